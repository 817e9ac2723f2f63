// Reads a view with npm dotenv, as an agent would, and writes what it got.
// usage: node load_node.js DOTENV_DIR VIEW OUT.json
// OUT.json: {"version", "parse": {name: base64}, "fast": {...}, "env": {...}}: dotenv.parse
// of the file (default parser and { fast: true }) and the variables config({ path }) added
// to process.env.  Prints nothing (values must never reach output).
'use strict'
const fs = require('fs')
const path = require('path')
const [dir, view, out] = process.argv.slice(2)
const dotenv = require(path.join(dir, 'node_modules', 'dotenv'))
const version = require(path.join(dir, 'node_modules', 'dotenv', 'package.json')).version
const b64 = (obj) => Object.fromEntries(Object.entries(obj).map(
  ([k, v]) => [k, Buffer.from(v, 'utf8').toString('base64')]))
const buf = fs.readFileSync(view)
const parsed = dotenv.parse(buf)
const fast = dotenv.parse(buf, { fast: true })
const before = new Set(Object.keys(process.env))
const res = dotenv.config({ path: view, quiet: true })
const env = {}
for (const k of Object.keys(process.env)) if (!before.has(k)) env[k] = process.env[k]
fs.writeFileSync(out, JSON.stringify({
  version, error: res.error ? String(res.error.code || 'error') : null,
  parse: b64(parsed), fast: b64(fast), env: b64(env)
}))
