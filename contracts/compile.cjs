// Compiles a solc standard-JSON input (stdin) with the pinned solcjs and prints the output.
// Imports such as "@openzeppelin/contracts/..." resolve from node_modules; nothing is fetched.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const root = path.resolve(__dirname, "..");
const searchPaths = [path.join(root, "node_modules"), root];

function findImports(importPath) {
  if (importPath.includes("..")) return { error: `refusing relative escape in import ${importPath}` };
  for (const base of searchPaths) {
    const candidate = path.join(base, importPath);
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
  }
  return { error: `import not found: ${importPath} (run npm ci)` };
}

const input = fs.readFileSync(0, "utf8");
const output = JSON.parse(solc.compile(input, { import: findImports }));
output.compilerVersion = solc.version();
process.stdout.write(JSON.stringify(output));
