// Builds Banxway's GraphiQL page into banxway/static/graphiql/ (committed, shipped in the wheel):
//   index.html    the page, which loads only the two files below from this server (no inline script or style)
//   app.js        React, GraphiQL, the explorer plugin, @graphiql/toolkit and graphql-ws, minified
//   app.css       GraphiQL's stylesheet without its web fonts (Roboto and Fira Code): system fonts instead
//   LICENSES.txt  every npm package bundled into app.js and app.css: name, version, licence and its text
// Run `npm ci && npm run build` here, or ./build.sh; the versions are pinned in package.json and package-lock.json.
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(here, "../../banxway/static/graphiql");
const ASSETS = "/graphiql"; // where banxway/app.py serves `out` (development only)

const SANS = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
const MONO = 'ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace';

// GraphiQL's stylesheet embeds Roboto and Fira Code as data: URLs (400 KB) and names them in two variables:
// drop the @font-face rules and point the variables at the system's fonts. A GraphiQL that changes either fails
// the build rather than shipping its fonts, or fetching them.
const systemFonts = {
  name: "system-fonts",
  setup(build) {
    build.onLoad({ filter: /[\\/]node_modules[\\/]graphiql[\\/]dist[\\/]style\.css$/ }, async (args) => {
      let css = await fs.promises.readFile(args.path, "utf8");
      const fontFaces = css.match(/@font-face\s*\{[^}]*\}/g) ?? [];
      css = css.replace(/@font-face\s*\{[^}]*\}/g, "");
      const variables = [
        [/--font-family:\s*"Roboto",\s*sans-serif;/g, `--font-family: ${SANS};`],
        [/--font-family-mono:\s*"Fira Code",\s*monospace;/g, `--font-family-mono: ${MONO};`],
      ];
      for (const [pattern, replacement] of variables) {
        if (!pattern.test(css)) throw new Error(`graphiql/dist/style.css: no ${pattern} to replace`);
        css = css.replace(pattern, replacement);
      }
      if (fontFaces.length === 0) throw new Error("graphiql/dist/style.css: no @font-face rules to drop");
      return { contents: css, loader: "css" };
    });
  },
};

// The page's policy allows no inline style (style-src 'self'). Radix's dialogs lock the page's scrolling through
// react-remove-scroll-bar, which writes its rules into a <style> element (react-style-singleton): the same rules go
// into a constructed stylesheet instead (document.adoptedStyleSheets), which the policy does not restrict.
const constructedStylesheets = {
  name: "constructed-stylesheets",
  setup(build) {
    build.onLoad({ filter: /[\\/]node_modules[\\/]react-style-singleton[\\/]dist[\\/][^\\/]+[\\/]singleton\.js$/ }, () => ({
      contents: `export var stylesheetSingleton = function () {
  var counter = 0;
  var sheet = null;
  return {
    add: function (style) {
      if (counter == 0 && typeof document !== "undefined") {
        sheet = new CSSStyleSheet();
        sheet.replaceSync(style);
        document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
      }
      counter++;
    },
    remove: function () {
      counter--;
      if (!counter && sheet) {
        var removed = sheet;
        document.adoptedStyleSheets = document.adoptedStyleSheets.filter(function (s) { return s !== removed; });
        sheet = null;
      }
    },
  };
};
`,
      loader: "js",
    }));
  },
};

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { app: "src/main.jsx" },
  outdir: out,
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  jsx: "automatic",
  legalComments: "none", // the notices are in LICENSES.txt, with each package's licence text
  define: { "process.env.NODE_ENV": '"production"' },
  plugins: [systemFonts, constructedStylesheets],
  metafile: true,
  logLevel: "warning",
});
if (!Object.keys(result.metafile.inputs).some((input) => /react-style-singleton\/dist\/[^/]+\/singleton\.js$/.test(input))) {
  throw new Error("react-style-singleton's singleton.js is no longer bundled: check constructedStylesheets");
}

const js = fs.readFileSync(path.join(out, "app.js"), "utf8");
const css = fs.readFileSync(path.join(out, "app.css"), "utf8");

// Nothing in the stylesheet may load from elsewhere: no @import, no font, no url() but data: ones.
const remote = css.match(/@import[^;]*;|@font-face|url\(\s*["']?(?!data:)[^)]*\)/g);
if (remote) throw new Error(`app.css would load: ${remote.slice(0, 5).join(", ")}`);
if (/fonts\.(googleapis|gstatic)\.com|unpkg\.com|cdn\.jsdelivr\.net/.test(js + css)) {
  throw new Error("the bundle names a CDN or Google Fonts");
}

// The page: its two files by a content hash, so that a browser's cache never mixes two builds.
const version = (text) => createHash("sha256").update(text).digest("hex").slice(0, 12);
const page = fs
  .readFileSync(path.join(here, "src/index.html"), "utf8")
  .replaceAll("{{APP_CSS}}", `${ASSETS}/app.css?v=${version(css)}`)
  .replaceAll("{{APP_JS}}", `${ASSETS}/app.js?v=${version(js)}`);
fs.writeFileSync(path.join(out, "index.html"), page);

// LICENSES.txt: the packages whose files went into the bundle (esbuild's metafile), innermost node_modules.
const packages = new Map();
for (const input of Object.keys(result.metafile.inputs)) {
  const match = input.match(/^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//);
  if (match && !packages.has(match[1])) packages.set(match[1], JSON.parse(read(match[1], "package.json")));
}
const LICENCE_FILE = /^(licen[cs]e|copying)(\.(md|txt))?$/i;
const bundled = [...packages.entries()]
  .map(([directory, manifest]) => {
    const licence = typeof manifest.license === "string" ? manifest.license : (manifest.license?.type ?? "UNKNOWN");
    const file = fs.readdirSync(path.join(here, directory)).find((name) => LICENCE_FILE.test(name));
    return { manifest, licence, repository: repositoryOf(manifest), text: file && read(directory, file).trim() };
  })
  .sort((a, b) => a.manifest.name.localeCompare(b.manifest.name) || a.manifest.version.localeCompare(b.manifest.version));
// A package published without its licence file: the file of a package from the same repository (GraphiQL's
// plugins, React's compiler runtime), else, for MIT, the MIT licence with the author package.json names.
const sections = bundled.map(({ manifest, licence, repository, text }) => {
  const sibling = bundled.find((other) => other.text && other.repository && other.repository === repository);
  if (!text && sibling) {
    text = `(no licence file in the package; that of ${sibling.manifest.name}, from the same repository)\n\n${sibling.text}`;
  } else if (!text && licence === "MIT") {
    const author = typeof manifest.author === "string" ? manifest.author : manifest.author?.name;
    if (!author) throw new Error(`${manifest.name}: no licence file and no author`);
    text = `(no licence file in the package; the MIT licence, as its package.json says)\n\n${mit(author)}`;
  } else if (!text) {
    throw new Error(`${manifest.name}: no licence file, licence ${licence}`);
  }
  return { line: `${manifest.name} ${manifest.version} ${licence}`, text };
});
const licences = [
  "Third-party software bundled into app.js and app.css (built by web/graphiql/build.mjs).",
  "",
  ...sections.map((section) => section.line),
  "",
  ...sections.map((section) => `${"=".repeat(78)}\n${section.line}\n${"-".repeat(78)}\n${section.text}\n`),
].join("\n");
fs.writeFileSync(path.join(out, "LICENSES.txt"), licences);

for (const name of fs.readdirSync(out).sort()) {
  console.log(`${name.padEnd(14)} ${fs.statSync(path.join(out, name)).size.toLocaleString("en")} bytes`);
}
console.log(`${packages.size} packages, listed in LICENSES.txt`);

function repositoryOf(manifest) {
  const url = typeof manifest.repository === "string" ? manifest.repository : manifest.repository?.url;
  return url?.replace(/^git\+/, "").replace(/\.git$/, "").replace(/^https?:\/\/(www\.)?/, "");
}

function mit(author) {
  return `MIT License

Copyright (c) ${author}

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation the
rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to permit
persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions of the
Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE
WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.`;
}

function read(directory, name) {
  return fs.readFileSync(path.join(here, directory, name), "utf8");
}
