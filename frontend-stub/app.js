// The prefcenter preference centre: one page a contact opens from a link in an email.
//
// No build step, no dependencies. The link is /p/<token>; the page reads the token from
// its own address and talks GraphQL to ../graphql with "Authorization: Bearer <token>".
// Every GraphQL operation it uses is a constant below and is listed in README.md.

// --- GraphQL operations -----------------------------------------------------------------

const OVERVIEW = `query PreferenceCentre {
  me { id name email phone locale suppressed }
  scopes { id name depth pathIds channels }
  myDecisions {
    scopeId channel allowed reason nextAllowedAt explanation
    decidedBy { id name }
    event { id channel source occurredAt }
  }
  preferences {
    frequencies { scopeId channel maxCount period pausedUntil }
    notInterested { scopeId createdAt }
  }
  optBackInRequests { id scopeId channel status expiresAt kind }
}`;

// What every consent change answers: a payload or a typed error (never an exception).
const OUTCOME = `__typename
    ... on ConsentChangePayload { changed message }
    ... on BlockedError { blockingScopeId }
    ... on Error { code message field }`;

const OPT_OUT = `mutation OptOut($input: ConsentChangeInput!) {
  optOut(input: $input) {
    ${OUTCOME}
  }
}`;

const OPT_IN = `mutation OptIn($input: ConsentChangeInput!) {
  optIn(input: $input) {
    ${OUTCOME}
  }
}`;

const REQUEST_OPT_BACK_IN = `mutation RequestOptBackIn($input: RequestOptBackInInput!) {
  requestOptBackIn(input: $input) {
    __typename
    ... on OptBackInPayload { message request { id scopeId channel status expiresAt } }
    ... on BlockedError { blockingScopeId }
    ... on Error { code message field }
  }
}`;

// Issue #21: any pending consent request (opt-back-in or a first opt-in) is mailed again
// through one mutation, within the server's limits.
const RESEND_CONFIRMATION = `mutation ResendConfirmation($requestId: ID!) {
  resendConfirmation(requestId: $requestId) {
    __typename
    ... on ResendPayload { mailed message request { id expiresAt } }
    ... on Error { code message field }
  }
}`;

const SET_FREQUENCY = `mutation SetFrequency($input: FrequencyInput!) {
  updateContactFrequency(input: $input) {
    ${OUTCOME}
  }
}`;

const UNDO_NOT_INTERESTED = `mutation UndoNotInterested($input: NotInterestedInput!) {
  undoNotInterested(input: $input) {
    ${OUTCOME}
  }
}`;

const UPDATE_DETAILS = `mutation UpdateDetails($input: UpdateContactInput!) {
  updateContact(input: $input) {
    __typename
    ... on ContactPayload { contact { id name locale } }
    ... on Error { code message field }
  }
}`;

const HISTORY = `query History {
  consentEvents(first: 30) {
    edges { node { id action channel source occurredAt scope { id name } } }
  }
}`;

// --- Words ------------------------------------------------------------------------------

const CHANNEL_LABEL = { EMAIL: "Email", SMS: "Text messages" };
// Shown instead of a switch where a scope offers a channel we have no address for.
const NO_ADDRESS = {
  EMAIL: "We have no email address for you, so we can't email you about this.",
  SMS: "We have no phone number for you, so we can't text you about this.",
};
const CHANNEL_WORDS = { EMAIL: "email", SMS: "text messages", ALL: "email and text messages" };
const PERIOD_WORDS = { DAY: "a day", WEEK: "a week", MONTH: "a month" };
const SOURCE_WORDS = {
  PREFERENCE_CENTER: "on this page",
  EMAIL_LINK: "from a link in an email",
  ONE_CLICK: "with your mail program's unsubscribe button",
  SMS_KEYWORD: "by text message",
  ADMIN: "by our team",
  API: "by one of our systems",
  IMPORT: "by an import",
  PARTICIPATION_FORM: "on a sign-up form",
};
// Versions the words the contact agrees to, so the ledger says which form was shown.
const FORM_VERSION = "prefcenter-frontend-stub/1";
// Reasons under which messages are (still) wanted: the switch shows "On".
const ON_REASONS = new Set(["OPTED_IN", "DEFAULT_ALLOWED", "FREQUENCY_CAP"]);

const PROBLEMS = {
  expired: {
    title: "This link has expired",
    body: [
      "For your security, links to this page only work for a limited time.",
      "To get a fresh link, open the most recent email from {org} and choose “Manage preferences” at the bottom.",
      "To stop our emails straight away, use the “Unsubscribe” link in any email from {org}. To stop text messages, reply STOP to any of them.",
    ],
  },
  invalid: {
    title: "This link doesn't work",
    body: [
      "It may have been copied only in part, or it has been replaced by a newer link.",
      "Open the most recent email from {org} and choose “Manage preferences” at the bottom.",
      "To stop our emails straight away, use the “Unsubscribe” link in any email from {org}. To stop text messages, reply STOP to any of them.",
    ],
  },
  network: {
    title: "We couldn't reach the server",
    body: ["Check that you're connected to the internet, then try again. Nothing was changed."],
    retry: true,
  },
  busy: {
    title: "Too many requests",
    body: ["Please wait a minute, then try again. Nothing was changed."],
    retry: true,
  },
  server: {
    title: "Something went wrong on our side",
    body: ["Nothing was changed. Please try again in a few minutes."],
    retry: true,
  },
};

// --- Talking to the server --------------------------------------------------------------

const GRAPHQL_URL = new URL("../graphql", window.location.href).toString();
const TOKEN = decodeURIComponent(
  window.location.pathname.split("/").filter(Boolean).pop() || "",
);

class Problem extends Error {
  constructor(kind, detail) {
    super(detail || kind);
    this.kind = kind;
  }
}

async function graphql(query, variables = {}) {
  let response;
  try {
    response = await fetch(GRAPHQL_URL, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        Authorization: `Bearer ${TOKEN}`,
      },
      body: JSON.stringify({ query, variables }),
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
  } catch (_err) {
    throw new Problem("network");
  }
  if (response.status === 429) throw new Problem("busy");
  let body;
  try {
    body = await response.json();
  } catch (_err) {
    throw new Problem("server");
  }
  if (body && Array.isArray(body.errors) && body.errors.length) {
    const first = body.errors[0];
    const code = first.extensions && first.extensions.code;
    if (code === "EXPIRED") throw new Problem("expired");
    if (code === "UNAUTHENTICATED") throw new Problem("invalid");
    throw new Problem("server", first.message);
  }
  if (!response.ok || !body || !body.data) throw new Problem("server");
  return body.data;
}

// --- Small helpers ----------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const $ = (id) => document.getElementById(id);

// Dates as everywhere else a contact sees them (the server's templates.messages.date_locale
// and format_date): CLDR's long date in the contact's locale when the text around it is in
// that language; this page is in English, so an English locale (en, en-GB) or else "en".
let dateFormat = new Intl.DateTimeFormat("en", { dateStyle: "long" });
let timeFormat = new Intl.DateTimeFormat("en", { timeStyle: "short" });

function useLocale(locale) {
  let chosen = "en";
  try {
    const own = new Intl.Locale(String(locale || "").replace("_", "-"));
    if (own.language === "en") chosen = own.toString();
  } catch (_err) {
    chosen = "en";
  }
  dateFormat = new Intl.DateTimeFormat(chosen, { dateStyle: "long" });
  timeFormat = new Intl.DateTimeFormat(chosen, { timeStyle: "short" });
}

function formatDate(iso) {
  return iso ? dateFormat.format(new Date(iso)) : "";
}

function formatDateTime(iso) {
  return iso ? `${dateFormat.format(new Date(iso))}, ${timeFormat.format(new Date(iso))}` : "";
}

function fill(text) {
  return text.replaceAll("{org}", state.org || "us");
}

// --- State ------------------------------------------------------------------------------

const state = {
  org: "",
  me: null,
  scopes: [],
  byId: new Map(),
  children: new Map(),
  decisions: new Map(),
  frequencies: [],
  notInterested: [],
  requests: [],
  channels: [],
  openFrequency: new Set(),
  expanded: new Set(),
  collapsible: false,
};

const key = (scopeId, channel) => `${scopeId}|${channel}`;

function absorb(data) {
  state.me = data.me;
  useLocale(data.me.locale);
  state.scopes = data.scopes;
  state.byId = new Map(data.scopes.map((s) => [s.id, s]));
  state.children = new Map(data.scopes.map((s) => [s.id, []]));
  for (const s of data.scopes) {
    const parentId = s.pathIds.length > 1 ? s.pathIds[s.pathIds.length - 2] : null;
    if (parentId && state.children.has(parentId)) state.children.get(parentId).push(s);
  }
  state.decisions = new Map(data.myDecisions.map((d) => [key(d.scopeId, d.channel), d]));
  state.frequencies = data.preferences.frequencies;
  state.notInterested = data.preferences.notInterested;
  state.requests = (data.optBackInRequests || []).filter((r) => r.status === "PENDING");
  const root = data.scopes.find((s) => s.pathIds.length === 1) || data.scopes[0];
  state.org = root ? root.name : "";
  // The channels we can reach the contact on; each scope says which channels it offers.
  state.channels = ["EMAIL", "SMS"].filter((c) => (c === "EMAIL" ? data.me.email : data.me.phone));
  state.collapsible = data.scopes.length > 20;
}

function roots() {
  return state.scopes.filter((s) => {
    const parentId = s.pathIds.length > 1 ? s.pathIds[s.pathIds.length - 2] : null;
    return !parentId || !state.byId.has(parentId);
  });
}

function pathOf(scope) {
  return scope.pathIds.map((id) => state.byId.get(id)).filter(Boolean);
}

function descendants(scope) {
  const out = [];
  for (const child of state.children.get(scope.id) || []) out.push(child, ...descendants(child));
  return out;
}

// "Diet study and Sleep study", "A, B, C and 4 more"
function namesUnder(scope) {
  const names = descendants(scope).map((s) => s.name);
  if (names.length <= 3) {
    return names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)}` : names.join("");
  }
  return `${names.slice(0, 3).join(", ")} and ${names.length - 3} more`;
}

function descendantCount(scope) {
  let count = 0;
  for (const child of state.children.get(scope.id) || []) count += 1 + descendantCount(child);
  return count;
}

function pendingFor(scopeId, channel) {
  return state.requests.find(
    (r) => r.scopeId === scopeId && (r.channel === channel || r.channel === "ALL"),
  );
}

function destination(channel) {
  const me = state.me;
  if (channel === "SMS" && !me.email) return me.phone;
  return me.email || me.phone;
}

// --- Announcements ----------------------------------------------------------------------

function announce(message) {
  const alert = $("alert");
  alert.hidden = true;
  alert.textContent = "";
  const status = $("status");
  status.hidden = false;
  status.textContent = "";
  // A fresh text node after clearing makes screen readers announce repeated messages too.
  window.setTimeout(() => {
    status.textContent = message;
  }, 30);
}

function complain(message) {
  const status = $("status");
  status.hidden = true;
  status.textContent = "";
  const alert = $("alert");
  alert.hidden = false;
  alert.textContent = message;
}

function clearNotices() {
  for (const id of ["status", "alert"]) {
    $(id).hidden = true;
    $(id).textContent = "";
  }
}

function showProblem(kind) {
  const problem = PROBLEMS[kind] || PROBLEMS.server;
  $("loading").hidden = true;
  $("app").hidden = true;
  clearNotices();
  $("problem-title").textContent = problem.title;
  $("problem-body").replaceChildren(...problem.body.map((p) => h("p", { text: fill(p) })));
  $("retry").hidden = !problem.retry;
  $("problem").hidden = false;
  $("problem").dataset.kind = kind;
  document.title = `${problem.title} · Your preferences`;
  $("problem-title").setAttribute("tabindex", "-1");
  $("problem-title").focus();
}

// A failed change: session problems replace the page, the rest is explained in place.
function failed(err) {
  if (!(err instanceof Problem)) {
    console.error(err);
    complain("Something went wrong on this page. Reload it to see your current choices.");
    return;
  }
  if (err.kind === "expired" || err.kind === "invalid") {
    showProblem(err.kind);
  } else if (err.kind === "network") {
    complain(
      "We couldn't reach the server, so we can't tell whether your change was saved. " +
        "Check your connection, then reload this page to see your current choices.",
    );
  } else if (err.kind === "busy") {
    complain("Too many requests at once. Please wait a minute, then try again.");
  } else {
    complain("Something went wrong on our side and your change wasn't saved. Please try again later.");
  }
}

// --- The dialog (every change is confirmed before it acts) ------------------------------

let lastFocus = null;

function ask({ title, body = [], ok, okKind = "primary", cancel = "Cancel", choices = null }) {
  const dialog = $("dialog");
  $("dialog-title").textContent = title;
  const content = body.map((part) => (typeof part === "string" ? h("p", { text: part }) : part));
  let fieldset = null;
  if (choices) {
    fieldset = h(
      "fieldset",
      { class: "choices" },
      h("legend", { text: choices.legend }),
      choices.options.map((option, i) =>
        h(
          "label",
          { class: "choice" },
          h("input", {
            type: "radio",
            name: "dialog-choice",
            value: option.value,
            checked: i === 0,
          }),
          h("span", { class: "choice-text" }, h("strong", { text: option.label }),
            option.hint ? h("span", { class: "choice-hint", text: option.hint }) : null),
        ),
      ),
    );
    content.push(fieldset);
  }
  $("dialog-body").replaceChildren(...content);
  const okButton = $("dialog-ok");
  okButton.hidden = !ok;
  okButton.textContent = ok || "";
  okButton.className = `button button-${okKind}`;
  $("dialog-cancel").textContent = cancel;
  lastFocus = document.activeElement;
  return new Promise((resolve) => {
    const done = () => {
      dialog.removeEventListener("close", done);
      const accepted = dialog.returnValue === "ok";
      let choice = null;
      if (accepted && fieldset) {
        const picked = fieldset.querySelector("input:checked");
        choice = picked ? picked.value : null;
      }
      restoreFocus();
      resolve(accepted ? { choice } : null);
    };
    dialog.returnValue = "";
    dialog.addEventListener("close", done);
    dialog.showModal();
    const first = fieldset ? fieldset.querySelector("input") : ok ? okButton : $("dialog-cancel");
    first.focus();
  });
}

function restoreFocus() {
  const target = lastFocus && lastFocus.dataset ? lastFocus.dataset.focusKey : null;
  const el = target ? document.querySelector(`[data-focus-key="${CSS.escape(target)}"]`) : null;
  (el || lastFocus || $("main")).focus();
}

function quote(text) {
  return h("blockquote", { class: "consent-words" }, h("p", { text }));
}

// --- Actions ----------------------------------------------------------------------------

async function onSwitch(scope, channel) {
  clearNotices();
  const decision = state.decisions.get(key(scope.id, channel));
  if (!decision) return;
  const pending = pendingFor(scope.id, channel);
  if (state.me.suppressed || decision.reason === "SUPPRESSED") {
    await ask({
      title: "You can't change this here",
      body: [
        `${state.org} has blocked all messages to you, so nothing can be switched on.`,
        `If you think this is a mistake, please contact ${state.org}.`,
      ],
      cancel: "Close",
    });
    return;
  }
  if (pending) {
    await resendConfirmation(scope, pending);
    return;
  }
  if (ON_REASONS.has(decision.reason)) {
    await optOutFlow(scope, channel);
  } else if (decision.reason === "NOT_INTERESTED") {
    const muted = (decision.decidedBy && state.byId.get(decision.decidedBy.id)) || scope;
    await undoNotInterestedFlow(muted);
  } else if (decision.reason === "OPTED_OUT") {
    const here = decision.decidedBy && decision.decidedBy.id === scope.id;
    if (here) {
      const all = decision.event && decision.event.channel === "ALL";
      await optBackInFlow(scope, all ? "ALL" : channel, decision);
    } else {
      await blockedFlow(scope, channel, decision);
    }
  } else {
    await optInFlow(scope, channel);
  }
}

async function optOutFlow(scope, channel) {
  const words = CHANNEL_WORDS[channel];
  const levels = pathOf(scope).reverse();
  const options = levels.map((level, i) => {
    const below = descendantCount(level);
    if (i === 0) {
      return {
        value: level.id,
        label: below ? `${level.name} and everything under it` : `Only ${level.name}`,
        hint: below ? `Covers ${namesUnder(level)}` : null,
      };
    }
    return {
      value: level.id,
      label: `Everything from ${level.name}`,
      hint: `Covers ${namesUnder(level)}`,
    };
  });
  const answer = await ask({
    title: `Stop ${words} from ${scope.name}?`,
    body: [
      `We'll stop sending you ${words} about what you choose below.`,
      "You can switch it back on later; we'll then ask you to confirm by email first.",
    ],
    choices: options.length > 1 ? { legend: "What should we stop?", options } : null,
    ok: `Yes, stop ${words}`,
    okKind: "danger",
    cancel: "No, keep it",
  });
  if (!answer) return;
  const target = state.byId.get(answer.choice || scope.id) || scope;
  await change(OPT_OUT, "optOut", {
    input: { scopeId: target.id, channel, source: "PREFERENCE_CENTER" },
  }, (result) => {
    const under = descendantCount(target) ? " or anything under it" : "";
    return result.changed
      ? `Done: you won't get ${words} from ${target.name}${under} any more.`
      : `You had already stopped ${words} from ${target.name}.`;
  });
}

function consentText(scope, channel) {
  const to = channel === "SMS" ? state.me.phone : state.me.email;
  if (channel === "SMS") {
    return `I agree to receive text messages from ${state.org} about ${scope.name} at ${to}. ` +
      "Message and data rates may apply. I can reply STOP at any time to stop them.";
  }
  if (channel === "ALL") {
    return `Yes, I want to get email and text messages from ${state.org} about ${scope.name} again.`;
  }
  return `I agree to receive email from ${state.org} about ${scope.name} at ${to}. ` +
    "I can unsubscribe at any time.";
}

async function optInFlow(scope, channel) {
  const words = CHANNEL_WORDS[channel];
  const text = consentText(scope, channel);
  const answer = await ask({
    title: `Get ${words} from ${scope.name}?`,
    body: [`We need your permission first. By choosing “I agree” you confirm:`, quote(text)],
    ok: "I agree",
    cancel: "Not now",
  });
  if (!answer) return;
  await runOptIn(scope, channel, text);
}

async function runOptIn(scope, channel, text) {
  const words = CHANNEL_WORDS[channel];
  let data;
  try {
    data = await graphql(OPT_IN, {
      input: {
        scopeId: scope.id,
        channel,
        source: "PREFERENCE_CENTER",
        evidence: { text, formVersion: FORM_VERSION },
      },
    });
  } catch (err) {
    failed(err);
    return;
  }
  const result = data.optIn;
  if (result.__typename === "ConsentChangePayload") {
    await reload(
      result.changed
        ? `Done: you'll get ${words} from ${scope.name} from now on.`
        : `You already get ${words} from ${scope.name}.`,
    );
  } else if (result.code === "OPT_BACK_IN_REQUIRED") {
    // An opt-out here is only lifted by the contact's confirmation (double opt-in).
    await runOptBackIn(scope, channel, text);
  } else {
    await reload(null);
    explainRefusal(result, channel);
  }
}

async function optBackInFlow(scope, channel, decision) {
  const words = CHANNEL_WORDS[channel];
  const when = decision.event ? ` on ${formatDate(decision.event.occurredAt)}` : "";
  const text = channel === "ALL"
    ? consentText(scope, "ALL")
    : `Yes, I want to get ${words} from ${state.org} about ${scope.name} again.`;
  const answer = await ask({
    title: `Turn ${words} from ${scope.name} back on?`,
    body: [
      `You stopped ${words} from ${scope.name}${when}.`,
      `To make sure it's really you, we'll send a confirmation link to ${destination(channel)}. ` +
        `Nothing changes until you open it.`,
      "By asking for the link you confirm:",
      quote(text),
    ],
    ok: "Send me the link",
    cancel: "Not now",
  });
  if (!answer) return;
  await runOptBackIn(scope, channel, text);
}

async function runOptBackIn(scope, channel, text) {
  const words = CHANNEL_WORDS[channel];
  let data;
  try {
    data = await graphql(REQUEST_OPT_BACK_IN, {
      input: { scopeId: scope.id, channel, evidence: { text, formVersion: FORM_VERSION } },
    });
  } catch (err) {
    failed(err);
    return;
  }
  const result = data.requestOptBackIn;
  if (result.__typename === "OptBackInPayload") {
    const until = result.request && result.request.expiresAt
      ? ` The link works until ${formatDate(result.request.expiresAt)}.`
      : "";
    await reload(
      `Check your inbox: we sent a confirmation link to ${destination(channel)}. ` +
        `${capitalise(words)} from ${scope.name} stays off until you open it.${until}`,
    );
  } else {
    await reload(null);
    explainRefusal(result, channel);
  }
}

async function resendConfirmation(scope, pending) {
  const words = CHANNEL_WORDS[pending.channel];
  const again = pending.kind === "OPT_IN" ? "" : " back";
  const answer = await ask({
    title: "Waiting for your confirmation",
    body: [
      `We sent a link to ${destination(pending.channel)} to turn ${words} from ${scope.name}` +
        `${again} on. It stays off until you open that link, which works until ` +
        `${formatDate(pending.expiresAt)}.`,
      "Can't find it? Check your spam folder, or we can send the mail again.",
    ],
    ok: "Send the mail again",
    cancel: "Close",
  });
  if (!answer) return;
  let data;
  try {
    data = await graphql(RESEND_CONFIRMATION, { requestId: pending.id });
  } catch (err) {
    failed(err);
    return;
  }
  const result = data.resendConfirmation;
  await reload(result.__typename === "ResendPayload"
    ? (result.mailed ? `Sent again: check your inbox at ${destination(pending.channel)}.`
      : result.message)
    : result.message);
}

async function blockedFlow(scope, channel, decision) {
  const words = CHANNEL_WORDS[channel];
  const blocker = decision.decidedBy && state.byId.get(decision.decidedBy.id);
  if (!blocker) {
    await ask({ title: `${capitalise(words)} from ${scope.name} is off`, body: [decision.explanation], cancel: "Close" });
    return;
  }
  const answer = await ask({
    title: `${capitalise(words)} from ${scope.name} is off`,
    body: [
      `It's off because you stopped ${words} from all of ${blocker.name}` +
        (decision.event ? ` on ${formatDate(decision.event.occurredAt)}.` : "."),
      `To get ${words} from ${scope.name} again, turn ${words} from ${blocker.name} back on. ` +
        "That also turns on everything else under it that you haven't switched off separately.",
    ],
    ok: `Turn on ${words} from ${blocker.name}…`,
    cancel: "Keep it off",
  });
  if (!answer) return;
  const blockerDecision = state.decisions.get(key(blocker.id, channel)) || decision;
  await onSwitchResolved(blocker, channel, blockerDecision);
}

async function onSwitchResolved(scope, channel, decision) {
  const all = decision.event && decision.event.channel === "ALL";
  await optBackInFlow(scope, all ? "ALL" : channel, decision);
}

function explainRefusal(result, channel) {
  if (result.__typename === "BlockedError") {
    const blocker = state.byId.get(result.blockingScopeId);
    const words = CHANNEL_WORDS[channel];
    complain(
      blocker
        ? `This is covered by your choice to stop ${words} from ${blocker.name}. Turn that back on first.`
        : result.message,
    );
  } else if (result.code === "EXPIRED" || result.code === "UNAUTHENTICATED") {
    showProblem(result.code === "EXPIRED" ? "expired" : "invalid");
  } else {
    complain(result.message || "That didn't work. Please try again.");
  }
}

// What "Not interested" does, in the same words as the Not Interested page (ni.effect in
// the server's templates/messages.py): every channel, the scope and everything under it.
function notInterestedEffect(scope) {
  return `We won't contact you about ${scope.name} any more: no emails or text messages about it.`;
}

async function undoNotInterestedFlow(scope) {
  const answer = await ask({
    title: `Changed your mind about ${scope.name}?`,
    body: [
      `You said you're not interested in ${scope.name}. ${notInterestedEffect(scope)}`,
      "If you've changed your mind, we may contact you about it again.",
    ],
    ok: "I've changed my mind",
    cancel: "Keep it muted",
  });
  if (!answer) return;
  await change(UNDO_NOT_INTERESTED, "undoNotInterested", { input: { scopeId: scope.id } },
    (result) => result.changed
      ? `Done: we may contact you about ${scope.name} again.`
      : `${scope.name} wasn't muted any more.`);
}

async function stopEverything() {
  clearNotices();
  const root = roots()[0];
  if (!root) return;
  const answer = await ask({
    title: "Unsubscribe from everything?",
    body: [
      `We'll stop all email and text messages from ${state.org}, about everything.`,
      "You can switch things back on later; we'll then ask you to confirm by email first.",
    ],
    ok: "Yes, unsubscribe me from everything",
    okKind: "danger",
    cancel: "No, go back",
  });
  if (!answer) return;
  await change(OPT_OUT, "optOut", {
    input: { scopeId: root.id, channel: "ALL", source: "PREFERENCE_CENTER" },
  }, (result) => result.changed
    ? `Done: you're unsubscribed from all email and text messages from ${state.org}.`
    : `You were already unsubscribed from everything from ${state.org}.`);
}

// Run a mutation that answers ConsentChangeResult, then reload and say what happened.
async function change(mutation, field, variables, describe) {
  let data;
  try {
    data = await graphql(mutation, variables);
  } catch (err) {
    failed(err);
    return false;
  }
  const result = data[field];
  if (result.__typename === "ConsentChangePayload") {
    await reload(describe(result));
    return true;
  }
  await reload(null);
  explainRefusal(result, variables.input.channel || "ALL");
  return false;
}

async function saveFrequency(scope, form) {
  clearNotices();
  const mode = form.querySelector("input[type=radio]:checked").value;
  const input = { scopeId: scope.id, channel: "ALL", source: "PREFERENCE_CENTER" };
  let success;
  if (mode === "none") {
    if (!frequencyAt(scope.id)) {
      announce(`Nothing to change: ${scope.name} has no limit of its own.`);
      return;
    }
    input.clear = true;
    const inherited = effectiveFrequency(scope);
    success = inherited && inherited.scope.id !== scope.id
      ? `Done: the limit for ${scope.name} is removed. The limit set for ${inherited.scope.name} still applies.`
      : `Done: ${scope.name} may contact you as often as needed.`;
  } else if (mode === "cap") {
    const count = Number.parseInt(form.querySelector("input[type=number]").value, 10);
    if (!Number.isInteger(count) || count < 1 || count > 100) {
      complain("Enter a number of messages from 1 to 100.");
      form.querySelector("input[type=number]").focus();
      return;
    }
    input.maxCount = count;
    input.period = form.querySelector("select").value;
    success = `Done: ${scope.name} may contact you at most ${plural(count)} ${PERIOD_WORDS[input.period]}.`;
  } else {
    const raw = form.querySelector("input[type=date]").value;
    const until = raw ? new Date(`${raw}T00:00:00`) : null;
    if (!until || Number.isNaN(until.getTime()) || until <= new Date()) {
      complain("Choose a date in the future to pause until.");
      form.querySelector("input[type=date]").focus();
      return;
    }
    input.pausedUntil = until.toISOString();
    success = `Done: nothing from ${scope.name} until ${formatDate(input.pausedUntil)}.`;
  }
  await change(SET_FREQUENCY, "updateContactFrequency", { input }, (result) =>
    result.changed ? success : "Nothing changed: that was already your choice.");
}

async function saveDetails(event) {
  event.preventDefault();
  clearNotices();
  const name = $("details-name").value.trim();
  const locale = $("details-locale").value;
  let data;
  try {
    data = await graphql(UPDATE_DETAILS, { input: { name, locale } });
  } catch (err) {
    failed(err);
    return;
  }
  const result = data.updateContact;
  if (result.__typename === "ContactPayload") {
    state.me.name = result.contact.name;
    state.me.locale = result.contact.locale;
    renderHeader();
    announce("Saved: your details are up to date.");
  } else {
    complain(result.message);
    if (result.field === "name") $("details-name").focus();
  }
}

// --- Loading ----------------------------------------------------------------------------

async function load() {
  const data = await graphql(OVERVIEW);
  absorb(data);
  render();
}

async function reload(message) {
  try {
    await load();
  } catch (err) {
    failed(err);
    return;
  }
  if (message) announce(message);
  if (!$("history").open) return;
  await loadHistory();
}

async function start() {
  $("problem").hidden = true;
  $("loading").hidden = false;
  if (!TOKEN) {
    showProblem("invalid");
    return;
  }
  try {
    await load();
  } catch (err) {
    if (err instanceof Problem) showProblem(err.kind);
    else {
      console.error(err);
      showProblem("server");
    }
    return;
  }
  $("loading").hidden = true;
  $("app").hidden = false;
}

// --- Rendering --------------------------------------------------------------------------

function capitalise(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function plural(count) {
  return count === 1 ? "1 message" : `${count} messages`;
}

function frequencyAt(scopeId) {
  const here = state.frequencies.filter((f) => f.scopeId === scopeId);
  return here.find((f) => f.channel === "ALL") || here[0] || null;
}

function effectiveFrequency(scope) {
  const path = pathOf(scope).reverse();
  for (const level of path) {
    const pref = frequencyAt(level.id);
    if (pref) return { pref, scope: level };
  }
  return null;
}

function describeFrequency(pref) {
  if (pref.pausedUntil && new Date(pref.pausedUntil) > new Date()) {
    return `Paused until ${formatDate(pref.pausedUntil)}`;
  }
  if (pref.maxCount !== null && pref.maxCount !== undefined && pref.period) {
    return `At most ${plural(pref.maxCount)} ${PERIOD_WORDS[pref.period]}`;
  }
  return "As often as needed";
}

function renderHeader() {
  const me = state.me;
  $("org").textContent = state.org;
  $("org").hidden = !state.org;
  const parts = [me.email, me.phone].filter(Boolean).join(" · ");
  $("who").textContent = me.name ? `For ${me.name} · ${parts}` : `For ${parts}`;
  $("who").hidden = false;
  $("intro").textContent =
    `Choose what ${state.org || "we"} may send you, and how often. Your changes apply straight away.`;
  $("intro").hidden = false;
  document.title = `Your preferences · ${state.org}`;
}

function render() {
  const active = document.activeElement;
  const focusKey = active && active.dataset ? active.dataset.focusKey : null;
  renderHeader();
  renderPending();
  renderMuted();
  renderTree();
  renderEverything();
  renderDetails();
  if (focusKey) {
    const el = document.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
    if (el) el.focus();
  }
}

function renderPending() {
  const items = state.requests.map((r) => {
    const scope = state.byId.get(r.scopeId);
    const name = scope ? scope.name : "a topic";
    return h("li", {},
      h("p", {},
        h("strong", { text: `${capitalise(CHANNEL_WORDS[r.channel])} from ${name}` }),
        ` — we sent a link to ${destination(r.channel)}. Open it to switch this back on. `,
        `It works until ${formatDate(r.expiresAt)}.`));
  });
  $("pending-list").replaceChildren(...items);
  $("pending-section").hidden = items.length === 0;
}

function renderMuted() {
  const items = state.notInterested.map((mark) => {
    const scope = state.byId.get(mark.scopeId);
    if (!scope) return null;
    return h("li", { class: "muted-item" },
      h("p", {}, h("strong", { text: scope.name }), ` — since ${formatDate(mark.createdAt)}. `,
        notInterestedEffect(scope)),
      h("button", {
        type: "button",
        class: "button button-secondary",
        "aria-label": `I've changed my mind about ${scope.name}`,
        "data-focus-key": `undo|${scope.id}`,
        onclick: () => { clearNotices(); undoNotInterestedFlow(scope); },
      }, "I've changed my mind"));
  }).filter(Boolean);
  $("muted-list").replaceChildren(...items);
  $("muted-section").hidden = items.length === 0;
}

function renderTree() {
  $("tree").replaceChildren(...roots().map((s) => renderNode(s)));
}

function renderNode(scope) {
  const kids = state.children.get(scope.id) || [];
  const isRoot = scope.pathIds.length === 1;
  const headingId = `scope-${scope.id}`;
  const card = h("div", { class: `card${isRoot ? " card-root" : ""}` },
    h("div", { class: "card-head" },
      h("h3", { id: headingId, class: "scope-name" }, scope.name)),
    kids.length
      ? h("p", { class: "covers" }, isRoot
        ? `Switching this off stops everything from ${scope.name}.`
        : `Switching this off also stops ${namesUnder(scope)}.`)
      : null,
    h("div", { class: "channels" }, (scope.channels || []).map((channel) =>
      state.channels.includes(channel) ? renderChannel(scope, channel) : renderNoAddress(channel))),
    renderFrequency(scope));
  const node = h("li", { class: "node" }, card);
  if (kids.length) {
    const collapsed = state.collapsible && scope.pathIds.length > 1 && !state.expanded.has(scope.id);
    if (state.collapsible && scope.pathIds.length > 1) {
      const toggle = h("button", {
        type: "button",
        class: "button button-link toggle",
        "aria-expanded": collapsed ? "false" : "true",
        "data-focus-key": `toggle|${scope.id}`,
        onclick: () => {
          if (state.expanded.has(scope.id)) state.expanded.delete(scope.id);
          else state.expanded.add(scope.id);
          render();
        },
      }, `${collapsed ? "Show" : "Hide"} the ${kids.length} under ${scope.name}`);
      card.append(toggle);
    }
    if (!collapsed) node.append(h("ul", { class: "tree" }, kids.map((k) => renderNode(k))));
  }
  return node;
}

function renderChannel(scope, channel) {
  const decision = state.decisions.get(key(scope.id, channel));
  if (!decision) return null;
  const pending = pendingFor(scope.id, channel);
  const on = ON_REASONS.has(decision.reason) && !pending;
  const suppressed = state.me.suppressed || decision.reason === "SUPPRESSED";
  const whyId = `why-${scope.id}-${channel}`;
  // The switch already says On or Off; the words say why.
  let why = capitalise(decision.explanation.replace(/^(On|Off|Waiting): /, ""));
  if (suppressed) why = `Off: ${state.org} has blocked all messages to you.`;
  if (pending) {
    why = `Off until you open the link we emailed you (it works until ${formatDate(pending.expiresAt)}).`;
  }
  const stateText = pending ? "Waiting" : on ? "On" : "Off";
  return h("div", { class: `channel${on ? " is-on" : " is-off"}${pending ? " is-waiting" : ""}` },
    h("span", { class: "channel-name" },
      h("span", { class: `channel-icon icon-${channel.toLowerCase()}`, "aria-hidden": "true" }),
      CHANNEL_LABEL[channel]),
    h("span", { class: "why", id: whyId }, why),
    h("button", {
      type: "button",
      role: "switch",
      class: "switch",
      "aria-checked": on ? "true" : "false",
      "aria-label": `${CHANNEL_LABEL[channel]} from ${scope.name}`,
      "aria-describedby": whyId,
      "aria-disabled": suppressed ? "true" : null,
      "data-focus-key": `switch|${scope.id}|${channel}`,
      onclick: () => onSwitch(scope, channel),
    },
    h("span", { class: "switch-track", "aria-hidden": "true" }, h("span", { class: "switch-thumb" })),
    h("span", { class: "switch-state", "aria-hidden": "true" }, stateText)));
}

// A channel the scope offers but we have no address for: say why, no switch that does nothing.
function renderNoAddress(channel) {
  return h("div", { class: "channel is-unavailable" },
    h("span", { class: "channel-name" },
      h("span", { class: `channel-icon icon-${channel.toLowerCase()}`, "aria-hidden": "true" }),
      CHANNEL_LABEL[channel]),
    h("span", { class: "why" }, NO_ADDRESS[channel]));
}

let uid = 0;

function renderFrequency(scope) {
  const effective = effectiveFrequency(scope);
  const own = frequencyAt(scope.id);
  let summary = "As often as needed";
  if (effective) {
    summary = describeFrequency(effective.pref);
    if (effective.scope.id !== scope.id) summary += ` (set for ${effective.scope.name})`;
  }
  const n = ++uid;
  const mode = own
    ? own.pausedUntil && new Date(own.pausedUntil) > new Date() ? "pause" : own.maxCount !== null ? "cap" : "none"
    : "none";
  const tomorrow = new Date(Date.now() + 86400000);
  const minDate = `${tomorrow.getFullYear()}-${String(tomorrow.getMonth() + 1).padStart(2, "0")}-${String(tomorrow.getDate()).padStart(2, "0")}`;
  const pausedValue = own && own.pausedUntil ? own.pausedUntil.slice(0, 10) : "";
  const radio = (value, label) => h("label", { class: "choice choice-inline" },
    h("input", { type: "radio", name: `freq-${n}`, value, checked: mode === value }),
    h("span", { text: label }));
  const form = h("form", {
    class: "frequency-form",
    novalidate: true,
    onsubmit: (event) => {
      event.preventDefault();
      saveFrequency(scope, form);
    },
  },
  h("fieldset", { class: "choices" },
    h("legend", { text: `How often may ${scope.name} contact you?` }),
    radio("none", "As often as needed"),
    h("div", { class: "choice-row" },
      radio("cap", "At most"),
      h("label", { class: "visually-hidden", for: `freq-count-${n}` }, "Number of messages"),
      h("input", {
        id: `freq-count-${n}`, type: "number", min: "1", max: "100", inputmode: "numeric",
        value: own && own.maxCount ? own.maxCount : 2, class: "count",
        onfocus: () => { form.querySelector("input[value=cap]").checked = true; },
      }),
      h("span", { "aria-hidden": "true" }, "messages"),
      h("label", { class: "visually-hidden", for: `freq-period-${n}` }, "per"),
      h("select", {
        id: `freq-period-${n}`,
        onfocus: () => { form.querySelector("input[value=cap]").checked = true; },
      }, ["DAY", "WEEK", "MONTH"].map((p) => h("option", {
        value: p, selected: own ? own.period === p : p === "WEEK",
      }, PERIOD_WORDS[p])))),
    h("div", { class: "choice-row" },
      radio("pause", "Pause until"),
      h("label", { class: "visually-hidden", for: `freq-date-${n}` }, "Pause until date"),
      h("input", {
        id: `freq-date-${n}`, type: "date", min: minDate, value: pausedValue,
        onfocus: () => { form.querySelector("input[value=pause]").checked = true; },
      }))),
  h("button", { type: "submit", class: "button button-secondary", "data-focus-key": `freq-save|${scope.id}` },
    "Save how often"));
  const details = h("details", {
    class: "frequency",
    open: state.openFrequency.has(scope.id),
    ontoggle: () => {
      if (details.open) state.openFrequency.add(scope.id);
      else state.openFrequency.delete(scope.id);
    },
  },
  h("summary", { "data-focus-key": `freq|${scope.id}` },
    h("span", { class: "summary-label" }, "How often: "),
    h("span", { class: "summary-value" }, summary)),
  form);
  return details;
}

function renderEverything() {
  $("everything-text").textContent =
    `Stop all email and text messages from ${state.org}, about everything listed above.`;
}

function renderDetails() {
  const me = state.me;
  if (document.activeElement !== $("details-name")) $("details-name").value = me.name || "";
  const select = $("details-locale");
  const lang = (me.locale || "en").split(/[-_]/)[0];
  if (![...select.options].some((o) => o.value === lang)) {
    select.append(h("option", { value: lang }, lang));
  }
  select.value = lang;
  const known = [me.email && `email ${me.email}`, me.phone && `phone ${me.phone}`].filter(Boolean);
  $("details-contact").textContent =
    `We reach you by ${known.join(" and ")}. To change these, please contact ${state.org}.`;
}

// --- History ----------------------------------------------------------------------------

function describeEvent(node) {
  const scope = node.scope ? node.scope.name : "a topic";
  const words = CHANNEL_WORDS[node.channel] || "messages";
  switch (node.action) {
    case "OPTED_OUT": return `Stopped ${words} from ${scope}`;
    case "OPTED_IN": return `Agreed to get ${words} from ${scope}`;
    case "NOT_INTERESTED": return `Said you're not interested in ${scope}`;
    case "INTEREST_RESTORED": return `Changed your mind about ${scope}`;
    case "FREQUENCY_SET": return `Changed how often ${scope} may contact you`;
    case "FREQUENCY_CLEARED": return `Removed the limit for ${scope}`;
    case "OPT_BACK_IN_REQUESTED": return `Asked to get ${words} from ${scope} again`;
    case "OPT_BACK_IN_CONFIRMED": return `Confirmed getting ${words} from ${scope} again`;
    case "OPT_BACK_IN_EXPIRED": return `A link to get ${words} from ${scope} again expired unused`;
    case "SUPPRESSED": return `${state.org} blocked all messages to you`;
    case "UNSUPPRESSED": return `${state.org} lifted the block on messages to you`;
    default: return `${capitalise(String(node.action).toLowerCase().replaceAll("_", " "))}: ${scope}`;
  }
}

async function loadHistory() {
  const list = $("history-list");
  let data;
  try {
    data = await graphql(HISTORY);
  } catch (err) {
    list.replaceChildren(h("li", { text: "We couldn't load your history. Close and open this section to try again." }));
    if (err instanceof Problem && (err.kind === "expired" || err.kind === "invalid")) showProblem(err.kind);
    return;
  }
  const edges = data.consentEvents.edges;
  if (!edges.length) {
    list.replaceChildren(h("li", { text: "No changes yet." }));
    return;
  }
  list.replaceChildren(...edges.map(({ node }) => h("li", {},
    h("time", { datetime: node.occurredAt }, formatDateTime(node.occurredAt)),
    h("span", {}, `${describeEvent(node)} ${SOURCE_WORDS[node.source] || ""}`.trim()))));
}

// --- Download my data (GDPR Art. 15/20): one JSON file of everything held about me ------

const DATA_URL = new URL("../senders/me/data", window.location.href).toString();

async function downloadData() {
  const status = $("download-status");
  status.textContent = "Preparing your file\u2026";
  let response;
  try {
    response = await fetch(DATA_URL, {
      headers: { Authorization: `Bearer ${TOKEN}`, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
  } catch (_err) {
    status.textContent = "Could not reach the server; please try again.";
    return;
  }
  if (!response.ok) {
    status.textContent = "Your data could not be prepared; please try again later.";
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: "my-data.json", hidden: "" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  status.textContent = "Downloaded: my-data.json";
}

// --- Wiring -----------------------------------------------------------------------------

$("retry").addEventListener("click", () => start());
$("stop-everything").addEventListener("click", () => stopEverything());
$("details-form").addEventListener("submit", saveDetails);
$("download-data").addEventListener("click", downloadData);
$("history").addEventListener("toggle", () => {
  if ($("history").open) loadHistory();
});
$("dialog").addEventListener("cancel", () => {
  $("dialog").returnValue = "cancel";
});

start();
