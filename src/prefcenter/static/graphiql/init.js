// prefcenter's GraphiQL: everything is served by this server (no CDN), so the page works
// offline and under a strict Content-Security-Policy. Put your key in the Headers tab:
// {"Authorization": "Bearer pc_..."}. Headers are not stored in the browser.
(function () {
  "use strict";
  var url = window.location.origin + window.location.pathname;
  var wsUrl = url.replace(/^http/, "ws");
  var params = new URLSearchParams(window.location.search);
  var fetcher = GraphiQL.createFetcher({ url: url, subscriptionUrl: wsUrl });
  var element = React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultQuery: params.get("query") || "# Put your API key in the Headers tab below:\n" +
      '#   {"Authorization": "Bearer pc_..."}\n# then run this (Ctrl-Enter).\n\n' +
      "{\n  scopes {\n    id\n    kind\n    name\n  }\n}\n",
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
    defaultEditorToolsVisibility: "headers",
    inputValueDeprecation: true,
  });
  ReactDOM.createRoot(document.getElementById("graphiql")).render(element);
})();
