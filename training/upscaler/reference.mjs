// The reference: an UpscalerJS ESRGAN model run by TFJS itself (pure JS, CPU backend).
//
// The model is loaded from the package's model.json and shards with the
// package's own model definition (its custom layers and value range), so the
// figures compare the ONNX files with what UpscalerJS computes, not with a
// second reading of the same files. Photos come in as binary PPM, decoded once
// by Python, so both sides see identical pixels; the raw float32 model output
// (NHWC, the tier's native range) goes to OUT_DIR/<photo>.f32.
//
// usage: node reference.mjs NODE_MODULES TIER SCALE OUT_DIR IMAGE.ppm... > versions.json
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';

const [nodeModules, tier, scale, outDir, ...images] = process.argv.slice(2);
const require = createRequire(resolve(nodeModules, 'package.json'));
const tf = require('@tensorflow/tfjs');
const packageName = `@upscalerjs/esrgan-${tier}`;
const packageDir = resolve(nodeModules, packageName);
const definition = require(packageName)[`x${scale}`];

function readPpm(path) {
  const buffer = readFileSync(path);
  const text = buffer.toString('latin1', 0, 64);
  const header = /^P6\s+(\d+)\s+(\d+)\s+255\s/.exec(text);
  if (!header) throw new Error(`${path}: not an 8-bit binary PPM`);
  const [width, height] = [Number(header[1]), Number(header[2])];
  const pixels = buffer.subarray(header[0].length, header[0].length + (width * height * 3));
  return tf.tensor4d(Float32Array.from(pixels), [1, height, width, 3]);
}

async function loadModel() {
  const modelJson = join(packageDir, definition._internals.path);
  const spec = JSON.parse(readFileSync(modelJson, 'utf8'));
  const weightSpecs = spec.weightsManifest.flatMap((group) => group.weights);
  const shards = spec.weightsManifest.flatMap((group) => group.paths.map((p) => readFileSync(join(dirname(modelJson), p))));
  const joined = Buffer.concat(shards);
  const weightData = joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength);
  if (definition.setup) definition.setup(tf);
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: spec.modelTopology, weightSpecs, weightData }));
}

async function main() {
  await tf.setBackend('cpu');
  await tf.ready();
  const model = await loadModel();
  const span = definition.inputRange[1];
  mkdirSync(outDir, { recursive: true });
  for (const path of images) {
    const started = Date.now();
    const output = tf.tidy(() => model.predict(readPpm(path).div(255 / span)));
    writeFileSync(join(outDir, `${basename(path, '.ppm')}.f32`), Buffer.from((await output.data()).buffer));
    process.stderr.write(`${tier} x${scale} ${path}: ${output.shape} in ${Date.now() - started} ms\n`);
    output.dispose();
  }
  const versions = { package: `${packageName}@${JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')).version}`,
    tfjs: tf.version.tfjs, backend: tf.getBackend(), inputRange: definition.inputRange };
  process.stdout.write(`${JSON.stringify(versions)}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
