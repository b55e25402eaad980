// prefcenter's GraphiQL: everything is served by this server (no CDN), so the page works
// offline and under a strict Content-Security-Policy. Put your key in the Headers tab:
// {"Authorization": "Bearer pc_..."}. Headers are not stored in the browser.
//
// The schema needs a key (anonymous introspection is refused), so the page does not ask
// for it until the Headers tab holds an Authorization header: opening GraphiQL shows the
// hint, not an UNAUTHENTICATED error. With a header (typed or pasted) the schema loads by
// itself; "Re-fetch GraphQL schema" asks again after the key is corrected.
(function () {
  "use strict";
  var url = window.location.origin + window.location.pathname;
  var wsUrl = url.replace(/^http/, "ws");
  var params = new URLSearchParams(window.location.search);
  var fetcher = GraphiQL.createFetcher({ url: url, subscriptionUrl: wsUrl });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  var hasKey = false;

  function authorizationIn(text) {
    try {
      var headers = JSON.parse(text || "{}");
      return Object.keys(headers).some(function (name) {
        return name.toLowerCase() === "authorization" && String(headers[name]).trim() !== "";
      });
    } catch (_err) {
      return false; // still being typed
    }
  }

  function render() {
    root.render(React.createElement(GraphiQL, {
      fetcher: fetcher,
      // null: do not introspect (yet); undefined: introspect with the Headers tab's headers.
      schema: hasKey ? undefined : null,
      onEditHeaders: function (text) {
        if (!hasKey && authorizationIn(text)) {
          hasKey = true;
          render();
        }
      },
      defaultQuery: params.get("query") || "# Put your API key in the Headers tab below:\n" +
        '#   {"Authorization": "Bearer pc_..."}\n# then run this (Ctrl-Enter).\n\n' +
        "{\n  scopes {\n    id\n    kind\n    name\n  }\n}\n",
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: "headers",
      inputValueDeprecation: true,
    }));
  }

  render();
})();
