// Analyses Kusto (KQL) queries offline with Microsoft's Kusto language service (npm
// @kusto/language-service-next), against a table schema given by the caller. Used by
// tests/infra/test_alert_queries.py; it only reports, the test decides.
//
//   node tests/infra/kusto_analyze.js < request.json > answer.json
//
// request: {"tables": {"<table>": {"<column>": "<kusto type>", ...}, ...},
//           "queries": {"<name>": "<query text>", ...}}
// answer:  {"<name>": {"diagnostics": [{"severity", "message", "start", "length"}],
//                      "columns": [{"name", "type"}],      // the result's columns, in order
//                      "tables": ["<table>", ...]}}         // schema tables the query reads
"use strict";

const fs = require("fs");
const path = require("path");

// The package is a Bridge.NET build of Kusto.Language: its runtime (bridge.js) must load first, and both
// register themselves as globals (Bridge, Kusto) rather than exporting anything.
const packageDir = path.dirname(require.resolve("@kusto/language-service-next/package.json"));
require(path.join(packageDir, "bridge.min.js"));
require(path.join(packageDir, "Kusto.Language.Bridge.min.js"));
const Kusto = global.Kusto.Language;
const Symbols = Kusto.Symbols;

function list(collection) {
  const out = [];
  if (!collection) return out;
  for (let i = 0; i < collection.Count; i++) out.push(collection.getItem(i));
  return out;
}

function globalsFor(tables) {
  const symbols = Object.entries(tables).map(([name, columns]) => {
    const schema = "(" + Object.entries(columns).map(([column, type]) => `${column}:${type}`).join(", ") + ")";
    return new Symbols.TableSymbol.$ctor7(name, schema, null);
  });
  const database = new Symbols.DatabaseSymbol.ctor("applicationinsights", symbols);
  return Kusto.GlobalState.Default.WithDatabase(database);
}

function analyse(text, globals) {
  const code = Kusto.KustoCode.ParseAndAnalyze(text, globals);
  const diagnostics = list(code.GetDiagnostics()).map((d) => ({
    severity: d.Severity,
    message: d.Message,
    start: d.Start,
    length: d.Length,
  }));
  const result = code.ResultType;
  const columns = result && result.Columns
    ? list(result.Columns).map((c) => ({ name: c.Name, type: c.Type ? c.Type.Name : null }))
    : [];
  const tables = new Set();
  code.Syntax.WalkElements((element) => {
    const symbol = element.ReferencedSymbol;
    if (symbol instanceof Symbols.TableSymbol && symbol.Name) tables.add(symbol.Name);
  });
  return { diagnostics, columns, tables: [...tables].sort() };
}

const request = JSON.parse(fs.readFileSync(0, "utf8"));
const globals = globalsFor(request.tables);
const answer = {};
for (const [name, text] of Object.entries(request.queries)) answer[name] = analyse(text, globals);
process.stdout.write(JSON.stringify(answer, null, 1) + "\n");
