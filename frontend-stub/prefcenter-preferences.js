// <prefcenter-preferences>: the prefcenter preference centre as a framework-free web
// component. One ES module, no build step, no dependencies. Any page (React, Vue, plain
// HTML) drops it in:
//
//   <script type="module" src="https://prefs.example.com/static/component/prefcenter-preferences.js"></script>
//   <prefcenter-preferences token="..." api="https://prefs.example.com"></prefcenter-preferences>
//
// Attributes: token (the contact's link token), api (the server's address; GraphQL at
// <api>/graphql), lang (optional: force a language instead of the contact's locale).
// Events (bubbling, composed CustomEvents): prefcenter-load, prefcenter-change,
// prefcenter-error; theming through --prefcenter-* custom properties. README.md, section
// "The embeddable component", documents all of it. The preference page (/p/<token>) is
// this component in a page of its own. Every GraphQL operation is a constant below; their
// TypeScript types (prefcenter-preferences.graphql.d.ts) are generated from schema.graphql.

// --- GraphQL operations (read by graphql-codegen: keep them plain documents) ----------------------------------------------------------------

const OVERVIEW = /* GraphQL */ `query PreferenceCentre {
  me { id name email phone whatsapp locale suppressed timeZone }
  scopes { id name depth pathIds channels }
  myDecisions {
    scopeId channel allowed reason nextAllowedAt explanation
    decidedBy { id name }
    event { id channel source occurredAt }
  }
  preferences {
    frequencies { scopeId channel maxCount period pausedUntil }
    notInterested { scopeId createdAt }
    topicDecisions { scopeId topicId channel status }
  }
  optBackInRequests { id scopeId channel status expiresAt kind }
  quietHours {
    timeZone timeZoneSource
    channels { channel scopeHours { start end } ownHours { start end } setBy { id name } }
  }
  topics { id key name description kind scopeId }
}`;

// Issue #14: the contact's own stricter quiet hours for one channel (or clear: true).
const SET_QUIET_HOURS = /* GraphQL */ `mutation SetQuietHours($input: QuietHoursInput!) {
  setQuietHours(input: $input) {
    __typename
    ... on ConsentChangePayload { changed message }
    ... on BlockedError { blockingScopeId }
    ... on Error { code message field }
  }
}`;

// What every consent change answers: a payload or a typed error (never an exception).
const OPT_OUT = /* GraphQL */ `mutation OptOut($input: ConsentChangeInput!) {
  optOut(input: $input) {
    __typename
    ... on ConsentChangePayload { changed message }
    ... on BlockedError { blockingScopeId }
    ... on Error { code message field }
  }
}`;

const OPT_IN = /* GraphQL */ `mutation OptIn($input: ConsentChangeInput!) {
  optIn(input: $input) {
    __typename
    ... on ConsentChangePayload { changed message }
    ... on BlockedError { blockingScopeId }
    ... on Error { code message field }
  }
}`;

const REQUEST_OPT_BACK_IN = /* GraphQL */ `mutation RequestOptBackIn($input: RequestOptBackInInput!) {
  requestOptBackIn(input: $input) {
    __typename
    ... on OptBackInPayload { message request { id scopeId channel status expiresAt } }
    ... on BlockedError { blockingScopeId }
    ... on Error { code message field }
  }
}`;

const SET_FREQUENCY = /* GraphQL */ `mutation SetFrequency($input: FrequencyInput!) {
  updateContactFrequency(input: $input) {
    __typename
    ... on ConsentChangePayload { changed message }
    ... on BlockedError { blockingScopeId }
    ... on Error { code message field }
  }
}`;

const UNDO_NOT_INTERESTED = /* GraphQL */ `mutation UndoNotInterested($input: NotInterestedInput!) {
  undoNotInterested(input: $input) {
    __typename
    ... on ConsentChangePayload { changed message }
    ... on BlockedError { blockingScopeId }
    ... on Error { code message field }
  }
}`;

const UPDATE_DETAILS = /* GraphQL */ `mutation UpdateDetails($input: UpdateContactInput!) {
  updateContact(input: $input) {
    __typename
    ... on ContactPayload { contact { id name locale } }
    ... on Error { code message field }
  }
}`;

// Issue #21: any pending consent request (opt-back-in or a first opt-in) is mailed again
// through one mutation, within the server's limits.
const RESEND_CONFIRMATION = /* GraphQL */ `mutation ResendConfirmation($requestId: ID!) {
  resendConfirmation(requestId: $requestId) {
    __typename
    ... on ResendPayload { mailed message request { id expiresAt } }
    ... on Error { code message field }
  }
}`;

const HISTORY = /* GraphQL */ `query History {
  consentEvents(first: 30) {
    edges { node { id action channel source occurredAt scope { id name } } }
  }
}`;


class Problem extends Error {
  constructor(kind, detail) {
    super(detail || kind);
    this.kind = kind;
  }
}

const STYLESHEET = new URL("./app.css", import.meta.url).toString();

// The component's markup; ids are private to each instance's shadow root.
const TEMPLATE = `
<link rel="stylesheet" href="${STYLESHEET}">
<div class="component" id="container" part="container" lang="en">
  <div class="component-head">
    <p class="org" id="org" hidden></p>
    <p class="who" id="who" hidden></p>
    <p class="intro" id="intro" hidden></p>
  </div>
  <div id="main" class="component-body" tabindex="-1">
    <div class="notices">
      <div id="status" class="notice notice-ok" role="status" aria-live="polite" aria-atomic="true" hidden></div>
      <div id="alert" class="notice notice-problem" role="alert" aria-atomic="true" hidden></div>
    </div>

    <p id="loading" class="loading">Loading your preferences…</p>

    <section id="problem" class="problem" aria-labelledby="problem-title" hidden>
      <h2 id="problem-title"></h2>
      <div id="problem-body"></div>
      <p><button type="button" id="retry" class="button button-primary" hidden>Try again</button></p>
    </section>

    <div id="app" hidden>
      <section id="pending-section" class="panel panel-waiting" aria-labelledby="pending-title" hidden>
        <h2 id="pending-title">Waiting for your confirmation</h2>
        <ul id="pending-list" class="plain-list"></ul>
      </section>

      <section id="muted-section" class="panel" aria-labelledby="muted-title" hidden>
        <h2 id="muted-title">Things you said you're not interested in</h2>
        <p class="hint" id="muted-hint">Only you can see this list.</p>
        <ul id="muted-list" class="plain-list"></ul>
      </section>

      <section class="panel" aria-labelledby="tree-title">
        <h2 id="tree-title">What we may send you</h2>
        <p class="hint" id="tree-hint">Each switch shows whether we may contact you and why.
          Switching something off also stops everything listed under it.</p>
        <ul id="tree" class="tree" aria-labelledby="tree-title"></ul>
      </section>

      <section class="panel" aria-labelledby="everything-title">
        <h2 id="everything-title">Stop everything</h2>
        <p id="everything-text">Stop all email and text messages from us, about everything.</p>
        <p><button type="button" id="stop-everything" class="button button-danger">Unsubscribe from everything</button></p>
      </section>

      <section class="panel" aria-labelledby="details-title">
        <h2 id="details-title">Your details</h2>
        <form id="details-form" class="details-form" novalidate>
          <p class="field">
            <label for="details-name" id="details-name-label">Your name</label>
            <input id="details-name" name="name" type="text" autocomplete="name" maxlength="200">
          </p>
          <p class="field">
            <label for="details-locale" id="details-locale-label">Language of our messages</label>
            <select id="details-locale" name="locale"></select>
          </p>
          <p id="details-contact" class="hint"></p>
          <p><button type="submit" id="details-save" class="button button-secondary">Save details</button></p>
        </form>
      </section>

      <section id="quiet-section" class="panel" aria-labelledby="quiet-title" hidden>
        <h2 id="quiet-title">Quiet hours</h2>
        <p id="quiet-zone" class="hint"></p>
        <ul id="quiet-list" class="plain-list"></ul>
      </section>

      <section class="panel" aria-labelledby="history-title">
        <h2 id="history-title">Your history</h2>
        <p class="hint" id="history-hint">Every change is recorded with when and where it happened, so we can
          show we respect your choices.</p>
        <details id="history" class="history">
          <summary id="history-summary">Show what changed and when</summary>
          <ol id="history-list" class="history-list"></ol>
        </details>
        <p><button type="button" id="download-data" class="button button-secondary">Download my data</button>
          <span id="download-status" class="hint" aria-live="polite"></span></p>
      </section>
    </div>

    <dialog id="dialog" aria-labelledby="dialog-title" aria-describedby="dialog-body">
      <form method="dialog" id="dialog-form">
        <h2 id="dialog-title"></h2>
        <div id="dialog-body"></div>
        <div class="dialog-actions">
          <button type="submit" value="cancel" id="dialog-cancel" class="button button-secondary" formnovalidate>Cancel</button>
          <button type="submit" value="ok" id="dialog-ok" class="button button-primary"></button>
        </div>
      </form>
    </dialog>
  </div>
</div>`;

// One preference centre inside `root` (a shadow root) for `host` (the element).
// options: { token, api, lang }. Returns { start }.
// Marks a text for the catalog (graphql-codegen and Babel read this file as written).
const N_ = (text) => text;

// The markup's texts, by element id (translated once the catalog is loaded).
const STATIC_TEXTS = [
  ["loading", N_("Loading your preferences…")],
  ["retry", N_("Try again")],
  ["pending-title", N_("Waiting for your confirmation")],
  ["muted-title", N_("Things you said you're not interested in")],
  ["muted-hint", N_("Only you can see this list.")],
  ["tree-title", N_("What we may send you")],
  ["tree-hint", N_("Each switch shows whether we may contact you and why. Switching something off also stops everything listed under it.")],
  ["everything-title", N_("Stop everything")],
  ["stop-everything", N_("Unsubscribe from everything")],
  ["details-title", N_("Your details")],
  ["details-name-label", N_("Your name")],
  ["details-locale-label", N_("Language of our messages")],
  ["details-save", N_("Save details")],
  ["quiet-title", N_("Quiet hours")],
  ["history-title", N_("Your history")],
  ["history-hint", N_("Every change is recorded with when and where it happened, so we can show we respect your choices.")],
  ["history-summary", N_("Show what changed and when")],
  ["download-data", N_("Download my data")],
];

// The texts of the page around the component (/p/{token}: index.html, app.js), translated
// with the element's translateText() like its own.
const PAGE_TEXTS = [
  N_("Your email and text preferences"),
  N_("Skip to your choices"),
  N_("Your preferences"),
  N_("This page is only for you: please don't forward the email that brought you here. Every change you make is recorded with its date, so we can prove we respect it."),
];

function createPreferences(root, host, options) {
  const GRAPHQL_URL = new URL("graphql", options.api).toString();
  const TOKEN = options.token || "";

  // Tell the host page: every event bubbles out of the shadow root (composed).
  function emit(name, detail) {
    host.dispatchEvent(new CustomEvent(name, { detail, bubbles: true, composed: true }));
  }

  // --- Words ------------------------------------------------------------------------------

  // Every text is English in the code and looked up in the server's catalog for the
  // contact's language (GET <api>/component/texts: the contact's locale, then the
  // browser's languages, then the scope's default; the tenant's own wording included).
  // N_ marks a text for the catalog where it is translated later, at use.
  const TEXTS_URL = new URL("component/texts", options.api);
  let language = "en";
  let texts = {};

  function _(text, values = {}) {
    const pattern = texts[text] || text;
    return pattern.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
  }

  async function loadTexts() {
    if (options.lang) TEXTS_URL.searchParams.set("lang", options.lang);
    try {
      const response = await fetch(TEXTS_URL, {
        headers: TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {},
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
      if (!response.ok) throw new Error(String(response.status));
      const body = await response.json();
      language = body.language || "en";
      texts = body.texts || {};
    } catch (_err) {
      language = "en"; // the words the code is written in
      texts = {};
    }
    root.getElementById("container").setAttribute("lang", language);
    useLocale(null);
    localise();
  }

  // The component's own markup, in the contact's language.
  function localise() {
    for (const [id, text] of STATIC_TEXTS) $(id).textContent = _(text);
  }

  // The languages the contact may choose for our messages, each in its own words.
const LANGUAGE_NAMES = {
  en: "English", de: "Deutsch", fr: "Français", es: "Español", it: "Italiano",
  nl: "Nederlands", pt: "Português",
};
// Every channel the page can show, in order, and the contact field holding its address
// (the server's channel registry, services/channels/registry.py, says the same).
const ADDRESS_FIELD = { EMAIL: "email", SMS: "phone", WHATSAPP: "whatsapp" };
const CHANNEL_LABEL = { EMAIL: N_("Email"), SMS: N_("Text messages"), WHATSAPP: N_("WhatsApp") };
  // Shown instead of a switch where a scope offers a channel we have no address for.
  const NO_ADDRESS = {
    EMAIL: N_("We have no email address for you, so we can't email you about this."),
    SMS: N_("We have no phone number for you, so we can't text you about this."),
    WHATSAPP: N_("We have no WhatsApp number for you, so we can't message you there about this."),
  };
  const CHANNEL_WORDS = {
    EMAIL: N_("email"), SMS: N_("text messages"), WHATSAPP: N_("WhatsApp messages"),
    ALL: N_("email and text messages"),
  };
  const PERIOD_WORDS = { DAY: N_("a day"), WEEK: N_("a week"), MONTH: N_("a month") };
  const SOURCE_WORDS = {
    PREFERENCE_CENTER: N_("on this page"),
    EMAIL_LINK: N_("from a link in an email"),
    ONE_CLICK: N_("with your mail program's unsubscribe button"),
    SMS_KEYWORD: N_("by text message"),
    WHATSAPP_KEYWORD: N_("by WhatsApp message"),
    ADMIN: N_("by our team"),
    API: N_("by one of our systems"),
    IMPORT: N_("by an import"),
    PARTICIPATION_FORM: N_("on a sign-up form"),
  };
  // Versions the words the contact agrees to, so the ledger says which form was shown.
  const FORM_VERSION = "prefcenter-frontend-stub/1";
  // Reasons under which messages are (still) wanted: the switch shows "On".
  const ON_REASONS = new Set(["OPTED_IN", "DEFAULT_ALLOWED", "FREQUENCY_CAP", "QUIET_HOURS"]);

  const PROBLEMS = {
    expired: {
      title: N_("This link has expired"),
      body: [
        N_("For your security, links to this page only work for a limited time."),
        N_("To get a fresh link, open the most recent email from {org} and choose “Manage preferences” at the bottom."),
        N_("To stop our emails straight away, use the “Unsubscribe” link in any email from {org}. To stop text messages, reply STOP to any of them."),
      ],
    },
    invalid: {
      title: N_("This link doesn't work"),
      body: [
        N_("It may have been copied only in part, or it has been replaced by a newer link."),
        N_("Open the most recent email from {org} and choose “Manage preferences” at the bottom."),
        N_("To stop our emails straight away, use the “Unsubscribe” link in any email from {org}. To stop text messages, reply STOP to any of them."),
      ],
    },
    network: {
      title: N_("We couldn't reach the server"),
      body: [N_("Check that you're connected to the internet, then try again. Nothing was changed.")],
      retry: true,
    },
    busy: {
      title: N_("Too many requests"),
      body: [N_("Please wait a minute, then try again. Nothing was changed.")],
      retry: true,
    },
    server: {
      title: N_("Something went wrong on our side"),
      body: [N_("Nothing was changed. Please try again in a few minutes.")],
      retry: true,
    },
  };

  // --- Talking to the server --------------------------------------------------------------



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

  const $ = (id) => root.getElementById(id);

  // Dates as everywhere else a contact sees them (the server's templates.messages.date_locale
  // and format_date): CLDR's long date in the contact's locale when the text around it is in
  // that language; this page is in English, so an English locale (en, en-GB) or else "en".
  let dateFormat = new Intl.DateTimeFormat("en", { dateStyle: "long" });
  let timeFormat = new Intl.DateTimeFormat("en", { timeStyle: "short" });

  function useLocale(locale) {
    let chosen = language;
    try {
      const own = new Intl.Locale(String(locale || "").replace("_", "-"));
      if (own.language === language) chosen = own.toString();
      else chosen = language;
    } catch (_err) {
      chosen = language;
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
    const org = state.org || _("us");
    return _(text, { org });
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
    topics: [],
    topicOut: new Set(),
    requests: [],
    channels: [],
    openFrequency: new Set(),
    quiet: null,
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
    state.quiet = data.quietHours;
    // Topics (issue 14): each offered at its scope and below; the contact's switch per topic
    // and scope is its decision for ALL channels there.
    state.topics = data.topics || [];
    state.topicOut = new Set((data.preferences.topicDecisions || [])
      .filter((d) => d.status === "OPTED_OUT" && d.channel === "ALL")
      .map((d) => `${d.topicId}|${d.scopeId}`));
    state.requests = (data.optBackInRequests || []).filter((r) => r.status === "PENDING");
    const root = data.scopes.find((s) => s.pathIds.length === 1) || data.scopes[0];
    state.org = root ? root.name : "";
    // The channels we can reach the contact on; each scope says which channels it offers.
    state.channels = Object.keys(ADDRESS_FIELD).filter((c) => data.me[ADDRESS_FIELD[c]]);
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
      return names.length > 1
        ? _("{list} and {last}", { list: names.slice(0, -1).join(", "), last: names.at(-1) })
        : names.join("");
    }
    return _("{list} and {count} more", { list: names.slice(0, 3).join(", "), count: names.length - 3 });
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
    if (channel !== "EMAIL" && channel !== "ALL" && !me.email) return me[ADDRESS_FIELD[channel]];
    return me.email || me.phone || me.whatsapp;
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
    setTimeout(() => {
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
    $("problem-title").textContent = _(problem.title);
    $("problem-body").replaceChildren(...problem.body.map((p) => h("p", { text: fill(p) })));
    $("retry").hidden = !problem.retry;
    $("problem").hidden = false;
    $("problem").dataset.kind = kind;
    emit("prefcenter-error", { kind, title: _(problem.title) });
    $("problem-title").setAttribute("tabindex", "-1");
    $("problem-title").focus();
  }

  // A failed change: session problems replace the page, the rest is explained in place.
  // Every change the contact made here, for the host page (README: the component's events).
  function changed(operation, input, didChange) {
    emit("prefcenter-change", {
      operation,
      scopeId: input.scopeId || null,
      channel: input.channel || null,
      input: { ...input },
      changed: Boolean(didChange),
    });
  }

  function failed(err) {
    emit("prefcenter-error", { kind: err instanceof Problem ? err.kind : "script",
      message: err instanceof Error ? err.message : String(err) });
    if (!(err instanceof Problem)) {
      console.error(err);
      complain(_("Something went wrong on this page. Reload it to see your current choices."));
      return;
    }
    if (err.kind === "expired" || err.kind === "invalid") {
      showProblem(err.kind);
    } else if (err.kind === "network") {
      complain(
        _("We couldn't reach the server, so we can't tell whether your change was saved. Check your connection, then reload this page to see your current choices."),
      );
    } else if (err.kind === "busy") {
      complain(_("Too many requests at once. Please wait a minute, then try again."));
    } else {
      complain(_("Something went wrong on our side and your change wasn't saved. Please try again later."));
    }
  }

  // --- The dialog (every change is confirmed before it acts) ------------------------------

  let lastFocus = null;

  function ask({ title, body = [], ok, okKind = "primary", cancel = _("Cancel"), choices = null }) {
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
    lastFocus = root.activeElement;
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
    const el = target ? root.querySelector(`[data-focus-key="${CSS.escape(target)}"]`) : null;
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
        title: _("You can't change this here"),
        body: [
          _("{org} has blocked all messages to you, so nothing can be switched on.", { org: state.org }),
          _("If you think this is a mistake, please contact {org}.", { org: state.org }),
        ],
        cancel: _("Close"),
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
    const words = _(CHANNEL_WORDS[channel]);
    const levels = pathOf(scope).reverse();
    const options = levels.map((level, i) => {
      const below = descendantCount(level);
      if (i === 0) {
        return {
          value: level.id,
          label: below ? _("{name} and everything under it", { name: level.name })
            : _("Only {name}", { name: level.name }),
          hint: below ? _("Covers {names}", { names: namesUnder(level) }) : null,
        };
      }
      return {
        value: level.id,
        label: _("Everything from {name}", { name: level.name }),
        hint: _("Covers {names}", { names: namesUnder(level) }),
      };
    });
    const answer = await ask({
      title: _("Stop {words} from {scope}?", { words, scope: scope.name }),
      body: [
        _("We'll stop sending you {words} about what you choose below.", { words }),
        _("You can switch it back on later; we'll then ask you to confirm by email first."),
      ],
      choices: options.length > 1 ? { legend: _("What should we stop?"), options } : null,
      ok: _("Yes, stop {words}", { words }),
      okKind: "danger",
      cancel: _("No, keep it"),
    });
    if (!answer) return;
    const target = state.byId.get(answer.choice || scope.id) || scope;
    await change(OPT_OUT, "optOut", {
      input: { scopeId: target.id, channel, source: "PREFERENCE_CENTER" },
    }, (result) => {
      const values = { words, scope: target.name };
      if (!result.changed) return _("You had already stopped {words} from {scope}.", values);
      return descendantCount(target)
        ? _("Done: you won't get {words} from {scope} or anything under it any more.", values)
        : _("Done: you won't get {words} from {scope} any more.", values);
    });
  }

  function consentText(scope, channel) {
    const to = channel === "ALL" ? state.me.email : state.me[ADDRESS_FIELD[channel]];
    if (channel === "WHATSAPP") {
      return _("I agree to receive WhatsApp messages from {org} about {scope} at {to}. I can reply STOP at any time to stop them.",
        { org: state.org, scope: scope.name, to });
    }
    if (channel === "SMS") {
      return _("I agree to receive text messages from {org} about {scope} at {to}. Message and data rates may apply. I can reply STOP at any time to stop them.",
        { org: state.org, scope: scope.name, to });
    }
    if (channel === "ALL") {
      return _("Yes, I want to get email and text messages from {org} about {scope} again.",
        { org: state.org, scope: scope.name });
    }
    return _("I agree to receive email from {org} about {scope} at {to}. I can unsubscribe at any time.",
      { org: state.org, scope: scope.name, to });
  }

  async function optInFlow(scope, channel) {
    const words = _(CHANNEL_WORDS[channel]);
    const text = consentText(scope, channel);
    const answer = await ask({
      title: _("Get {words} from {scope}?", { words, scope: scope.name }),
      body: [_("We need your permission first. By choosing “I agree” you confirm:"), quote(text)],
      ok: _("I agree"),
      cancel: _("Not now"),
    });
    if (!answer) return;
    await runOptIn(scope, channel, text);
  }

  async function runOptIn(scope, channel, text) {
    const words = _(CHANNEL_WORDS[channel]);
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
      changed("optIn", { scopeId: scope.id, channel }, result.changed);
      await reload(
        result.changed
          ? _("Done: you'll get {words} from {scope} from now on.", { words, scope: scope.name })
          : _("You already get {words} from {scope}.", { words, scope: scope.name }),
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
    const words = _(CHANNEL_WORDS[channel]);
    const values = { words, scope: scope.name, org: state.org, to: destination(channel) };
    const text = channel === "ALL"
      ? consentText(scope, "ALL")
      : _("Yes, I want to get {words} from {org} about {scope} again.", values);
    const answer = await ask({
      title: _("Turn {words} from {scope} back on?", values),
      body: [
        decision.event
          ? _("You stopped {words} from {scope} on {date}.",
            { ...values, date: formatDate(decision.event.occurredAt) })
          : _("You stopped {words} from {scope}.", values),
        _("To make sure it's really you, we'll send a confirmation link to {to}. Nothing changes until you open it.", values),
        _("By asking for the link you confirm:"),
        quote(text),
      ],
      ok: _("Send me the link"),
      cancel: _("Not now"),
    });
    if (!answer) return;
    await runOptBackIn(scope, channel, text);
  }

  async function runOptBackIn(scope, channel, text) {
    const words = _(CHANNEL_WORDS[channel]);
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
      changed("requestOptBackIn", { scopeId: scope.id, channel }, true);
      const until = result.request && result.request.expiresAt
        ? ` ${_("The link works until {date}.", { date: formatDate(result.request.expiresAt) })}`
        : "";
      await reload(
        _("Check your inbox: we sent a confirmation link to {to}. {Words} from {scope} stays off until you open it.",
          { to: destination(channel), Words: capitalise(words), scope: scope.name }) + until,
      );
    } else {
      await reload(null);
      explainRefusal(result, channel);
    }
  }

  async function resendConfirmation(scope, pending) {
    const words = _(CHANNEL_WORDS[pending.channel]);
    const values = { to: destination(pending.channel), words, scope: scope.name,
      date: formatDate(pending.expiresAt) };
    const answer = await ask({
      title: _("Waiting for your confirmation"),
      body: [
        pending.kind === "OPT_IN"
          ? _("We sent a link to {to} to turn {words} from {scope} on. It stays off until you open that link, which works until {date}.", values)
          : _("We sent a link to {to} to turn {words} from {scope} back on. It stays off until you open that link, which works until {date}.", values),
        _("Can't find it? Check your spam folder, or we can send the mail again."),
      ],
      ok: _("Send the mail again"),
      cancel: _("Close"),
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
    if (result.__typename === "ResendPayload") {
      changed("resendConfirmation", { scopeId: scope.id, channel: pending.channel }, result.mailed);
    }
    await reload(result.__typename === "ResendPayload"
      ? (result.mailed ? _("Sent again: check your inbox at {to}.", values)
        : result.message)
      : result.message);
  }

  async function blockedFlow(scope, channel, decision) {
    const words = _(CHANNEL_WORDS[channel]);
    const blocker = decision.decidedBy && state.byId.get(decision.decidedBy.id);
    const title = _("{Words} from {scope} is off", { Words: capitalise(words), scope: scope.name });
    if (!blocker) {
      await ask({ title, body: [decision.explanation], cancel: _("Close") });
      return;
    }
    const values = { words, scope: scope.name, blocker: blocker.name };
    const answer = await ask({
      title,
      body: [
        decision.event
          ? _("It's off because you stopped {words} from all of {blocker} on {date}.",
            { ...values, date: formatDate(decision.event.occurredAt) })
          : _("It's off because you stopped {words} from all of {blocker}.", values),
        _("To get {words} from {scope} again, turn {words} from {blocker} back on. That also turns on everything else under it that you haven't switched off separately.", values),
      ],
      ok: _("Turn on {words} from {blocker}…", values),
      cancel: _("Keep it off"),
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
      const words = _(CHANNEL_WORDS[channel]);
      complain(
        blocker
          ? _("This is covered by your choice to stop {words} from {blocker}. Turn that back on first.",
            { words, blocker: blocker.name })
          : result.message,
      );
    } else if (result.code === "EXPIRED" || result.code === "UNAUTHENTICATED") {
      showProblem(result.code === "EXPIRED" ? "expired" : "invalid");
    } else {
      complain(result.message || _("That didn't work. Please try again."));
    }
  }

  // What "Not interested" does, in the same words as the Not Interested page (ni.effect in
  // the server's templates/messages.py): every channel, the scope and everything under it.
  function notInterestedEffect(scope) {
    return _("We won't contact you about {scope} any more: no emails or text messages about it.",
      { scope: scope.name });
  }

  async function undoNotInterestedFlow(scope) {
    const answer = await ask({
      title: _("Changed your mind about {scope}?", { scope: scope.name }),
      body: [
        `${_("You said you're not interested in {scope}.", { scope: scope.name })} ${notInterestedEffect(scope)}`,
        _("If you've changed your mind, we may contact you about it again."),
      ],
      ok: _("I've changed my mind"),
      cancel: _("Keep it muted"),
    });
    if (!answer) return;
    await change(UNDO_NOT_INTERESTED, "undoNotInterested", { input: { scopeId: scope.id } },
      (result) => result.changed
        ? _("Done: we may contact you about {scope} again.", { scope: scope.name })
        : _("{scope} wasn't muted any more.", { scope: scope.name }));
  }

  async function stopEverything() {
    clearNotices();
    const root = roots()[0];
    if (!root) return;
    const answer = await ask({
      title: _("Unsubscribe from everything?"),
      body: [
        _("We'll stop all email and text messages from {org}, about everything.", { org: state.org }),
        _("You can switch things back on later; we'll then ask you to confirm by email first."),
      ],
      ok: _("Yes, unsubscribe me from everything"),
      okKind: "danger",
      cancel: _("No, go back"),
    });
    if (!answer) return;
    await change(OPT_OUT, "optOut", {
      input: { scopeId: root.id, channel: "ALL", source: "PREFERENCE_CENTER" },
    }, (result) => result.changed
      ? _("Done: you're unsubscribed from all email and text messages from {org}.", { org: state.org })
      : _("You were already unsubscribed from everything from {org}.", { org: state.org }));
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
      changed(field, variables.input, result.changed);
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
        announce(_("Nothing to change: {scope} has no limit of its own.", { scope: scope.name }));
        return;
      }
      input.clear = true;
      const inherited = effectiveFrequency(scope);
      success = inherited && inherited.scope.id !== scope.id
        ? _("Done: the limit for {scope} is removed. The limit set for {other} still applies.",
          { scope: scope.name, other: inherited.scope.name })
        : _("Done: {scope} may contact you as often as needed.", { scope: scope.name });
    } else if (mode === "cap") {
      const count = Number.parseInt(form.querySelector("input[type=number]").value, 10);
      if (!Number.isInteger(count) || count < 1 || count > 100) {
        complain(_("Enter a number of messages from 1 to 100."));
        form.querySelector("input[type=number]").focus();
        return;
      }
      input.maxCount = count;
      input.period = form.querySelector("select").value;
      success = _("Done: {scope} may contact you at most {count} {period}.",
        { scope: scope.name, count: plural(count), period: _(PERIOD_WORDS[input.period]) });
    } else {
      const raw = form.querySelector("input[type=date]").value;
      const until = raw ? new Date(`${raw}T00:00:00`) : null;
      if (!until || Number.isNaN(until.getTime()) || until <= new Date()) {
        complain(_("Choose a date in the future to pause until."));
        form.querySelector("input[type=date]").focus();
        return;
      }
      input.pausedUntil = until.toISOString();
      success = _("Done: nothing from {scope} until {date}.",
        { scope: scope.name, date: formatDate(input.pausedUntil) });
    }
    await change(SET_FREQUENCY, "updateContactFrequency", { input }, (result) =>
      result.changed ? success : _("Nothing changed: that was already your choice."));
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
      changed("updateContact", { name, locale }, true);
      state.me.name = result.contact.name;
      state.me.locale = result.contact.locale;
      if (!options.lang) {
        await loadTexts(); // the page follows the language the contact chose
        useLocale(state.me.locale);
        render();
      }
      renderHeader();
      announce(_("Saved: your details are up to date."));
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
    emit("prefcenter-load", {
      organisation: state.org,
      contactId: state.me.id,
      locale: state.me.locale || null,
      language,
      scopes: state.scopes.length,
    });
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
    await loadTexts();
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
    return count === 1 ? _("1 message") : _("{count} messages", { count });
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
      return _("Paused until {date}", { date: formatDate(pref.pausedUntil) });
    }
    if (pref.maxCount !== null && pref.maxCount !== undefined && pref.period) {
      return _("At most {count} {period}",
        { count: plural(pref.maxCount), period: _(PERIOD_WORDS[pref.period]) });
    }
    return _("As often as needed");
  }

  function renderHeader() {
    const me = state.me;
    $("org").textContent = state.org;
    $("org").hidden = !state.org;
    const parts = [me.email, me.phone, me.whatsapp].filter(Boolean).join(" · ");
    $("who").textContent = me.name ? _("For {name} · {parts}", { name: me.name, parts })
      : _("For {parts}", { parts });
    $("who").hidden = false;
    $("intro").textContent =
      _("Choose what {org} may send you, and how often. Your changes apply straight away.",
        { org: state.org });
    $("intro").hidden = false;
  }

  function render() {
    const active = root.activeElement;
    const focusKey = active && active.dataset ? active.dataset.focusKey : null;
    renderHeader();
    renderPending();
    renderMuted();
    renderTree();
    renderEverything();
    renderDetails();
    renderQuietHours();
    if (focusKey) {
      const el = root.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
      if (el) el.focus();
    }
  }

  function renderPending() {
    const items = state.requests.map((r) => {
      const scope = state.byId.get(r.scopeId);
      const name = scope ? scope.name : _("a topic");
      return h("li", {},
        h("p", {},
          h("strong", { text: _("{Words} from {scope}",
            { Words: capitalise(_(CHANNEL_WORDS[r.channel])), scope: name }) }),
          ` — ${_("we sent a link to {to}. Open it to switch this back on. It works until {date}.",
            { to: destination(r.channel), date: formatDate(r.expiresAt) })}`));
    });
    $("pending-list").replaceChildren(...items);
    $("pending-section").hidden = items.length === 0;
  }

  function renderMuted() {
    const items = state.notInterested.map((mark) => {
      const scope = state.byId.get(mark.scopeId);
      if (!scope) return null;
      return h("li", { class: "muted-item" },
        h("p", {}, h("strong", { text: scope.name }),
          ` — ${_("since {date}.", { date: formatDate(mark.createdAt) })} `,
          notInterestedEffect(scope)),
        h("button", {
          type: "button",
          class: "button button-secondary",
          "aria-label": _("I've changed my mind about {scope}", { scope: scope.name }),
          "data-focus-key": `undo|${scope.id}`,
          onclick: () => { clearNotices(); undoNotInterestedFlow(scope); },
        }, _("I've changed my mind")));
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
          ? _("Switching this off stops everything from {scope}.", { scope: scope.name })
          : _("Switching this off also stops {names}.", { names: namesUnder(scope) }))
        : null,
      h("div", { class: "channels" }, (scope.channels || []).map((channel) =>
        state.channels.includes(channel) ? renderChannel(scope, channel) : renderNoAddress(channel))),
      renderTopics(scope),
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
        }, collapsed
          ? _("Show the {count} under {scope}", { count: kids.length, scope: scope.name })
          : _("Hide the {count} under {scope}", { count: kids.length, scope: scope.name }));
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
    let why = capitalise(explain(decision).replace(/^(On|Off|Waiting): /, ""));
    if (suppressed) why = _("Off: {org} has blocked all messages to you.", { org: state.org });
    if (pending) {
      why = _("Off until you open the link we emailed you (it works until {date}).",
        { date: formatDate(pending.expiresAt) });
    }
    const stateText = pending ? _("Waiting") : on ? _("On") : _("Off");
    return h("div", { class: `channel${on ? " is-on" : " is-off"}${pending ? " is-waiting" : ""}` },
      h("span", { class: "channel-name" },
        h("span", { class: `channel-icon icon-${channel.toLowerCase()}`, "aria-hidden": "true" }),
        _(CHANNEL_LABEL[channel])),
      h("span", { class: "why", id: whyId }, why),
      h("button", {
        type: "button",
        role: "switch",
        class: "switch",
        "aria-checked": on ? "true" : "false",
        "aria-label": _("{channel} from {scope}", { channel: _(CHANNEL_LABEL[channel]), scope: scope.name }),
        "aria-describedby": whyId,
        "aria-disabled": suppressed ? "true" : null,
        "data-focus-key": `switch|${scope.id}|${channel}`,
        onclick: () => onSwitch(scope, channel),
      },
      h("span", { class: "switch-track", "aria-hidden": "true" }, h("span", { class: "switch-thumb" })),
      h("span", { class: "switch-state", "aria-hidden": "true" }, stateText)));
  }

  // --- Topics (issue 14): one switch per topic offered at the scope ----------------------------

  function topicsAt(scope) {
    return state.topics.filter((t) => scope.pathIds.includes(t.scopeId));
  }

  // Where a topic is switched off on the scope's path (the highest such scope), or null.
  function topicOffAt(topic, scope) {
    const id = scope.pathIds.find((sid) => state.topicOut.has(`${topic.id}|${sid}`));
    return id ? state.byId.get(id) || scope : null;
  }

  function renderTopics(scope) {
    const offered = topicsAt(scope);
    if (!offered.length) return null;
    const headingId = `topics-${scope.id}`;
    return h("div", { class: "topics", role: "group", "aria-labelledby": headingId },
      h("h4", { id: headingId, class: "topics-title" }, _("Topics")),
      offered.map((topic) => renderTopic(scope, topic)));
  }

  function renderTopic(scope, topic) {
    const offAt = topicOffAt(topic, scope);
    const on = !offAt;
    const above = offAt && offAt.id !== scope.id;
    const whyId = `why-${scope.id}-${topic.id}`;
    const why = [topic.description,
      topic.kind === "TRANSACTIONAL"
        ? _("Sent even when other messages are off: it's about something you arranged.") : "",
      above ? _("Off for everything under {scope}.", { scope: offAt.name }) : ""]
      .filter(Boolean).join(" ");
    return h("div", { class: `channel topic${on ? " is-on" : " is-off"}` },
      h("span", { class: "channel-name" }, topic.name),
      h("span", { class: "why", id: whyId }, why),
      h("button", {
        type: "button",
        role: "switch",
        class: "switch",
        "aria-checked": on ? "true" : "false",
        "aria-label": _("{topic} from {scope}", { topic: topic.name, scope: scope.name }),
        "aria-describedby": whyId,
        "aria-disabled": above ? "true" : null,
        "data-focus-key": `topic|${scope.id}|${topic.id}`,
        onclick: () => onTopicSwitch(scope, topic),
      },
      h("span", { class: "switch-track", "aria-hidden": "true" }, h("span", { class: "switch-thumb" })),
      h("span", { class: "switch-state", "aria-hidden": "true" }, on ? _("On") : _("Off"))));
  }

  async function onTopicSwitch(scope, topic) {
    clearNotices();
    const offAt = topicOffAt(topic, scope);
    const values = { topic: topic.name, scope: scope.name };
    if (offAt && offAt.id !== scope.id) {
      complain(_("Off for everything under {scope}.", { scope: offAt.name }));
      return;
    }
    if (offAt) {
      const text = _("Yes, send me {topic} from {scope}.", values);
      await change(OPT_IN, "optIn", {
        input: { scopeId: scope.id, channel: "ALL", topic: topic.key, source: "PREFERENCE_CENTER",
          evidence: { text, formVersion: FORM_VERSION } },
      }, () => _("Done: {topic} from {scope} is on.", values));
      return;
    }
    const answer = await ask({
      title: _("Stop {topic} from {scope}?", values),
      body: [_("You won't get {topic} from {scope} or anything under it, by email or text message.", values)],
      ok: _("Yes, stop {words}", { words: topic.name }),
      okKind: "danger",
      cancel: _("No, keep it"),
    });
    if (!answer) return;
    await change(OPT_OUT, "optOut", {
      input: { scopeId: scope.id, channel: "ALL", topic: topic.key, source: "PREFERENCE_CENTER" },
    }, () => _("Done: {topic} from {scope} is off.", values));
  }

  // A channel the scope offers but we have no address for: say why, no switch that does nothing.
  function renderNoAddress(channel) {
    return h("div", { class: "channel is-unavailable" },
      h("span", { class: "channel-name" },
        h("span", { class: `channel-icon icon-${channel.toLowerCase()}`, "aria-hidden": "true" }),
        _(CHANNEL_LABEL[channel])),
      h("span", { class: "why" }, _(NO_ADDRESS[channel])));
  }

  // Why a switch is on or off. The server explains in English (GraphQL `explanation`, the
  // words senders and admins read too); in any other language the component says the
  // same from the decision's parts, in the contact's words.
  function explain(d) {
    if (language === "en") return d.explanation;
    const event = d.event;
    const values = {
      words: _(CHANNEL_WORDS[(event && event.channel) || d.channel] || CHANNEL_WORDS.ALL),
      scope: d.decidedBy ? d.decidedBy.name : "",
      date: event ? formatDate(event.occurredAt) : "",
      how: event && SOURCE_WORDS[event.source] ? _(SOURCE_WORDS[event.source]) : "",
    };
    switch (d.reason) {
      case "OPTED_OUT":
        return event ? _("Unsubscribed from {words} of {scope} on {date}, {how}.", values)
          : _("Unsubscribed from {words} of {scope}.", values);
      case "OPTED_IN":
        return event ? _("Subscribed to {words} of {scope} on {date}, {how}.", values)
          : _("Subscribed to {words} of {scope}.", values);
      case "DEFAULT_ALLOWED":
        return _("No choice made yet; this kind of message is sent unless you opt out.");
      case "CONSENT_REQUIRED":
        return _("No consent given yet; this kind of message needs your consent first.");
      case "FREQUENCY_CAP":
        return d.nextAllowedAt
          ? _("Messages from {scope} are held back until {date}.",
            { ...values, date: formatDate(d.nextAllowedAt) })
          : _("Messages from {scope} are held back for now.", values);
      case "QUIET_HOURS":
        return _("Held back during quiet hours until {date}.",
          { date: formatDateTime(d.nextAllowedAt) });
      case "CONFIRMATION_PENDING":
        return _("This needs your confirmation from the email we sent.");
      case "UNAVAILABLE":
        return _("Not available for this invitation.");
      case "NOT_INTERESTED":
        return `${_("You said you're not interested in {scope}.", values)} ${
          _("We won't contact you about {scope} any more: no emails or text messages about it.", values)}`;
      default:
        return d.explanation;
    }
  }

  let uid = 0;

  function renderFrequency(scope) {
    const effective = effectiveFrequency(scope);
    const own = frequencyAt(scope.id);
    let summary = _("As often as needed");
    if (effective) {
      summary = describeFrequency(effective.pref);
      if (effective.scope.id !== scope.id) {
        summary += ` ${_("(set for {scope})", { scope: effective.scope.name })}`;
      }
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
      h("legend", { text: _("How often may {scope} contact you?", { scope: scope.name }) }),
      radio("none", _("As often as needed")),
      h("div", { class: "choice-row" },
        radio("cap", _("At most")),
        h("label", { class: "visually-hidden", for: `freq-count-${n}` }, _("Number of messages")),
        h("input", {
          id: `freq-count-${n}`, type: "number", min: "1", max: "100", inputmode: "numeric",
          value: own && own.maxCount ? own.maxCount : 2, class: "count",
          onfocus: () => { form.querySelector("input[value=cap]").checked = true; },
        }),
        h("span", { "aria-hidden": "true" }, _("messages")),
        h("label", { class: "visually-hidden", for: `freq-period-${n}` }, _("per")),
        h("select", {
          id: `freq-period-${n}`,
          onfocus: () => { form.querySelector("input[value=cap]").checked = true; },
        }, ["DAY", "WEEK", "MONTH"].map((p) => h("option", {
          value: p, selected: own ? own.period === p : p === "WEEK",
        }, _(PERIOD_WORDS[p]))))),
      h("div", { class: "choice-row" },
        radio("pause", _("Pause until")),
        h("label", { class: "visually-hidden", for: `freq-date-${n}` }, _("Pause until date")),
        h("input", {
          id: `freq-date-${n}`, type: "date", min: minDate, value: pausedValue,
          onfocus: () => { form.querySelector("input[value=pause]").checked = true; },
        }))),
    h("button", { type: "submit", class: "button button-secondary", "data-focus-key": `freq-save|${scope.id}` },
      _("Save how often")));
    const details = h("details", {
      class: "frequency",
      open: state.openFrequency.has(scope.id),
      ontoggle: () => {
        if (details.open) state.openFrequency.add(scope.id);
        else state.openFrequency.delete(scope.id);
      },
    },
    h("summary", { "data-focus-key": `freq|${scope.id}` },
      h("span", { class: "summary-label" }, `${_("How often:")} `),
      h("span", { class: "summary-value" }, summary)),
    form);
    return details;
  }

  function renderEverything() {
    $("everything-text").textContent =
      _("Stop all email and text messages from {org}, about everything listed above.", { org: state.org });
  }

  function renderDetails() {
    const me = state.me;
    if (root.activeElement !== $("details-name")) $("details-name").value = me.name || "";
    const select = $("details-locale");
    const lang = (me.locale || "en").split(/[-_]/)[0];
    if (!select.options.length) {
      // Each language named in itself, marked with its own language for screen readers.
      select.append(...Object.entries(LANGUAGE_NAMES).map(([value, name]) =>
        h("option", { value, lang: value }, name)));
    }
    if (![...select.options].some((o) => o.value === lang)) {
      select.append(h("option", { value: lang }, lang));
    }
    select.value = lang;
    const values = { email: me.email, phone: me.phone, org: state.org };
    let reach = _("We reach you by phone {phone}. To change these, please contact {org}.", values);
    if (me.email && me.phone) {
      reach = _("We reach you by email {email} and phone {phone}. To change these, please contact {org}.", values);
    } else if (me.email) {
      reach = _("We reach you by email {email}. To change these, please contact {org}.", values);
    }
    $("details-contact").textContent = reach;
  }

  // --- Quiet hours (issue #14) -------------------------------------------------------------

  // The link's scope decides the quiet hours shown; the contact may only make them stricter
  // (the server refuses hours that do not include the scope's, naming them).
  function renderQuietHours() {
    const q = state.quiet;
    const channels = q ? q.channels.filter((c) => state.channels.includes(c.channel)) : [];
    $("quiet-section").hidden = channels.length === 0;
    if (!channels.length) return;
    $("quiet-zone").textContent = _("Times are in your time zone: {zone}.", { zone: q.timeZone });
    $("quiet-list").replaceChildren(...channels.map(renderQuietChannel));
  }

  function renderQuietChannel(c) {
    const words = _(CHANNEL_WORDS[c.channel]);
    const n = ++uid;
    const shown = c.ownHours || c.scopeHours || { start: "21:00", end: "08:00" };
    const items = [h("p", {}, h("strong", { text: capitalise(words) }), ` — ${c.scopeHours
      ? _("not between {start} and {end}.", c.scopeHours) : _("at any time of day.")}`)];
    if (c.ownHours) {
      items.push(h("p", { text: _("You asked for no {words} between {start} and {end}.",
        { words, ...c.ownHours }) }));
    }
    const form = h("form", {
      class: "quiet-form",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        clearNotices();
        saveQuietHours({ channel: c.channel, start: form.elements.start.value, end: form.elements.end.value });
      },
    },
    h("label", { for: `quiet-start-${n}` }, _("No {words} from", { words })),
    h("input", { id: `quiet-start-${n}`, name: "start", type: "time", value: shown.start, required: true }),
    h("label", { for: `quiet-end-${n}` }, _("until")),
    h("input", { id: `quiet-end-${n}`, name: "end", type: "time", value: shown.end, required: true }),
    h("button", { type: "submit", class: "button button-secondary", "data-focus-key": `quiet-save|${c.channel}` },
      _("Save quiet hours")));
    items.push(form);
    if (c.ownHours) {
      items.push(h("p", {}, h("button", {
        type: "button",
        class: "button button-secondary",
        "data-focus-key": `quiet-clear|${c.channel}`,
        onclick: () => { clearNotices(); saveQuietHours({ channel: c.channel, clear: true }); },
      }, _("Remove my quiet hours"))));
    }
    return h("li", { class: "quiet-item" }, ...items);
  }

  async function saveQuietHours(input) {
    await change(SET_QUIET_HOURS, "setQuietHours", { input },
      () => _("Saved: your quiet hours are up to date."));
  }

  // --- History ----------------------------------------------------------------------------

  function describeEvent(node) {
    const scope = node.scope ? node.scope.name : _("a topic");
    const words = CHANNEL_WORDS[node.channel] ? _(CHANNEL_WORDS[node.channel]) : _("messages");
    const org = state.org;
    switch (node.action) {
      case "OPTED_OUT": return _("Stopped {words} from {scope}", { words, scope, org });
      case "OPTED_IN": return _("Agreed to get {words} from {scope}", { words, scope, org });
      case "NOT_INTERESTED": return _("Said you're not interested in {scope}", { words, scope, org });
      case "INTEREST_RESTORED": return _("Changed your mind about {scope}", { words, scope, org });
      case "FREQUENCY_SET": return _("Changed how often {scope} may contact you", { words, scope, org });
      case "FREQUENCY_CLEARED": return _("Removed the limit for {scope}", { words, scope, org });
      case "QUIET_HOURS_SET": return _("Changed your quiet hours for {words}", { words });
      case "QUIET_HOURS_CLEARED": return _("Removed your quiet hours for {words}", { words });
      case "OPT_BACK_IN_REQUESTED": return _("Asked to get {words} from {scope} again", { words, scope, org });
      case "OPT_BACK_IN_CONFIRMED": return _("Confirmed getting {words} from {scope} again", { words, scope, org });
      case "OPT_BACK_IN_EXPIRED": return _("A link to get {words} from {scope} again expired unused", { words, scope, org });
      case "SUPPRESSED": return _("{org} blocked all messages to you", { words, scope, org });
      case "UNSUPPRESSED": return _("{org} lifted the block on messages to you", { words, scope, org });
      default: return `${capitalise(String(node.action).toLowerCase().replaceAll("_", " "))}: ${scope}`;
    }
  }

  async function loadHistory() {
    const list = $("history-list");
    let data;
    try {
      data = await graphql(HISTORY);
    } catch (err) {
      list.replaceChildren(h("li", { text: _("We couldn't load your history. Close and open this section to try again.") }));
      if (err instanceof Problem && (err.kind === "expired" || err.kind === "invalid")) showProblem(err.kind);
      return;
    }
    const edges = data.consentEvents.edges;
    if (!edges.length) {
      list.replaceChildren(h("li", { text: _("No changes yet.") }));
      return;
    }
    list.replaceChildren(...edges.map(({ node }) => h("li", {},
      h("time", { datetime: node.occurredAt }, formatDateTime(node.occurredAt)),
      h("span", {}, `${describeEvent(node)} ${SOURCE_WORDS[node.source] ? _(SOURCE_WORDS[node.source]) : ""}`.trim()))));
  }

  // --- Download my data (GDPR Art. 15/20): one JSON file of everything held about me ------

  const DATA_URL = new URL("senders/me/data", options.api).toString();

  async function downloadData() {
    const status = $("download-status");
    status.textContent = _("Preparing your file…");
    let response;
    try {
      response = await fetch(DATA_URL, {
        headers: { Authorization: `Bearer ${TOKEN}`, Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
    } catch (_err) {
      status.textContent = _("Could not reach the server; please try again.");
      return;
    }
    if (!response.ok) {
      status.textContent = _("Your data could not be prepared; please try again later.");
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const link = h("a", { href: url, download: "my-data.json", hidden: "" });
    root.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    status.textContent = _("Downloaded: my-data.json");
    emit("prefcenter-change", { operation: "downloadData", scopeId: null, channel: null,
      input: {}, changed: false });
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

  return { start, translate: _ };
}

// The server's address: the `api` attribute, else the origin this module came from.
function apiBase(value) {
  const base = value ? new URL(value, document.baseURI) : new URL("/", import.meta.url);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  return base.toString();
}

class PrefcenterPreferences extends HTMLElement {
  static get observedAttributes() {
    return ["token", "api", "lang"];
  }

  constructor() {
    super();
    this.attachShadow({ mode: "open", delegatesFocus: false });
    this._started = false;
  }

  connectedCallback() {
    this._mount();
  }

  attributeChangedCallback(_name, before, after) {
    if (this._started && before !== after) this._mount();
  }

  // Attributes set in one go (a framework rendering, the page's own script) mount once.
  _mount() {
    if (this._queued) return;
    this._queued = true;
    queueMicrotask(() => {
      this._queued = false;
      this._render();
    });
  }

  _render() {
    if (!this.isConnected) return;
    this._started = true;
    this.shadowRoot.innerHTML = TEMPLATE;
    const app = createPreferences(this.shadowRoot, this, {
      token: this.getAttribute("token") || "",
      api: apiBase(this.getAttribute("api")),
      lang: this.getAttribute("lang") || "",
    });
    // translateText(text, values): a text in the component's language (for the page around it).
    this.translateText = app.translate;
    app.start();
  }
}

if (!customElements.get("prefcenter-preferences")) {
  customElements.define("prefcenter-preferences", PrefcenterPreferences);
}

export { PAGE_TEXTS, PrefcenterPreferences };
