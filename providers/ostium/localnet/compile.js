#!/usr/bin/env node
// Compile the localnet contracts with the pinned solcjs (npm "solc") through
// its standard-JSON interface and write one artifact per deployable contract
// (abi + creation bytecode + runtime bytecode) to ./artifacts.
//
// Usage: node providers/ostium/localnet/compile.js [--out DIR]
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const here = __dirname;
const srcDir = path.join(here, 'contracts');
let outDir = path.join(here, 'artifacts');
const outIdx = process.argv.indexOf('--out');
if (outIdx !== -1) outDir = path.resolve(process.argv[outIdx + 1]);

const DEPLOYABLE = [
  'MockUSDC', 'OstiumFaucet', 'OstiumRegistry', 'OstiumTradingStorage', 'OstiumPriceUpKeep',
  'OstiumTrading', 'OstiumTradingCallbacks', 'Multicall3',
];

const sources = {};
for (const f of fs.readdirSync(srcDir).sort()) {
  if (f.endsWith('.sol')) sources[f] = { content: fs.readFileSync(path.join(srcDir, f), 'utf8') };
}

const input = {
  language: 'Solidity',
  sources,
  settings: {
    optimizer: { enabled: true, runs: 1 },
    viaIR: false,
    evmVersion: 'cancun',
    metadata: { bytecodeHash: 'none', appendCBOR: false },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
  },
};

function findImports(p) {
  const full = path.join(srcDir, p);
  if (fs.existsSync(full)) return { contents: fs.readFileSync(full, 'utf8') };
  return { error: 'File not found: ' + p };
}

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
let failed = false;
for (const e of output.errors || []) {
  if (e.severity === 'error') failed = true;
  process.stderr.write(e.formattedMessage + '\n');
}
if (failed) process.exit(1);

fs.mkdirSync(outDir, { recursive: true });
for (const file of Object.keys(output.contracts)) {
  for (const name of Object.keys(output.contracts[file])) {
    if (!DEPLOYABLE.includes(name)) continue;
    const c = output.contracts[file][name];
    const artifact = {
      contractName: name,
      sourceName: file,
      compiler: 'solc-js ' + solc.version(),
      abi: c.abi,
      bytecode: '0x' + c.evm.bytecode.object,
      deployedBytecode: '0x' + c.evm.deployedBytecode.object,
    };
    fs.writeFileSync(path.join(outDir, name + '.json'), JSON.stringify(artifact, null, 2) + '\n');
  }
}
process.stdout.write('compiled ' + DEPLOYABLE.length + ' contracts with solc ' + solc.version() + ' into ' + outDir + '\n');
