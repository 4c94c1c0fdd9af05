// Banxway's GraphiQL: the development page at GET /graphql (Accept: text/html), bundled by build.mjs into
// banxway/static/graphiql/ so that it loads nothing from the network (no CDN, no web fonts).
//
// URL parameters, as Strawberry's GraphiQL template reads them: `q` (the query; `query` would make the server run
// it), `variables` and `headers` (e.g. {"Authorization": "Bearer <accessToken>"}). The query and variables are kept
// in the URL as they change, so that a link reopens the same operation.
//
// Queries and mutations go over HTTP POST to /graphql with the headers of the headers editor; subscriptions go
// over a WebSocket (graphql-transport-ws, npm graphql-ws) to ws(s)://<this host>/graphql, those headers being
// the `connection_init` payload (the server takes `authorization` from it).
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { explorerPlugin } from "@graphiql/plugin-explorer";
import { GraphiQL } from "graphiql";
import { createRoot } from "react-dom/client";

import "graphiql/style.css";
import "@graphiql/plugin-explorer/style.css";
import "./page.css";

const DEFAULT_QUERY = `# Banxway GraphQL API (development)
#
# Sign in (the demo of \`banxway serve --demo\`), then put the token into Headers below:
#   {"Authorization": "Bearer <accessToken>"}
# Run: Ctrl-Enter. Complete: Ctrl-Space. Subscriptions (inboxEvents, threadEvents, ...) stream over WebSocket.

mutation Login {
  authLogin(input: {email: "admin@demo.banxway.dev", password: "banxway-demo"}) {
    accessToken
    userErrors { code message }
  }
}

query Me {
  me { email role organization { name } }
}
`;

const parameters = Object.fromEntries(new URLSearchParams(window.location.search));

function updateURL(changes) {
  Object.assign(parameters, changes);
  const search = new URLSearchParams(Object.entries(parameters).filter(([, value]) => Boolean(value)));
  window.history.replaceState(null, "", `${window.location.pathname}?${search}`);
}

const url = new URL(window.location.pathname, window.location.origin);
const subscriptionUrl = new URL(url);
subscriptionUrl.protocol = url.protocol === "https:" ? "wss:" : "ws:";

const fetcher = createGraphiQLFetcher({ url: url.href, subscriptionUrl: subscriptionUrl.href });
const plugins = [explorerPlugin()];

function App() {
  return (
    <GraphiQL
      fetcher={fetcher}
      plugins={plugins}
      defaultQuery={DEFAULT_QUERY}
      query={parameters.q}
      variables={parameters.variables}
      headers={parameters.headers}
      onEditQuery={(q) => updateURL({ q })}
      onEditVariables={(variables) => updateURL({ variables })}
      defaultEditorToolsVisibility={Boolean(parameters.variables || parameters.headers)}
      isHeadersEditorEnabled
      shouldPersistHeaders
      inputValueDeprecation
    />
  );
}

createRoot(document.getElementById("graphiql")).render(<App />);
