// The reference: face-api itself (pure-JS TFJS, CPU backend) on binary PPM photos.
//
// PPM in, so that node and Python see identical pixels: the JPEGs are decoded
// once, by Pillow, in reference.sh; a second JPEG decoder would add its own
// rounding to the comparison.
//
// usage: node reference.mjs FACE_API_DIR IMAGE.ppm... > reference.json
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join, resolve } from 'node:path';

const [faceApiDir, ...images] = process.argv.slice(2);
// Resolve tfjs from face-api's own node_modules tree, so there is one tf instance.
const require = createRequire(resolve(faceApiDir, 'package.json'));
const faceapi = require('./dist/face-api.node-wasm.js');
const { tf } = faceapi;

// Options the Python side uses too (analyzer.py): input 416, score 0.5.
const INPUT_SIZE = 416;
const SCORE_THRESHOLD = 0.5;

function readPpm(path) {
  const buffer = readFileSync(path);
  // Header: "P6" width height maxval, whitespace-separated, then one whitespace byte.
  const fields = [];
  let offset = 0;
  while (fields.length < 4) {
    while (/\s/.test(String.fromCharCode(buffer[offset]))) offset += 1;
    const start = offset;
    while (!/\s/.test(String.fromCharCode(buffer[offset]))) offset += 1;
    fields.push(buffer.toString('latin1', start, offset));
  }
  const [magic, width, height, maxval] = [fields[0], Number(fields[1]), Number(fields[2]), Number(fields[3])];
  if (magic !== 'P6' || maxval !== 255) throw new Error(`${path}: not an 8-bit binary PPM`);
  const pixels = buffer.subarray(offset + 1, offset + 1 + (width * height * 3));
  return { width, height, tensor: tf.tensor3d(Int32Array.from(pixels), [height, width, 3], 'int32') };
}

const round = (value) => Math.round(value * 1e4) / 1e4;

async function main() {
  await tf.setBackend('cpu');
  await tf.ready();
  const modelDir = join(faceApiDir, 'model');
  await faceapi.nets.tinyFaceDetector.loadFromDisk(modelDir);
  await faceapi.nets.faceLandmark68Net.loadFromDisk(modelDir);
  await faceapi.nets.ageGenderNet.loadFromDisk(modelDir);
  await faceapi.nets.faceRecognitionNet.loadFromDisk(modelDir);
  const options = new faceapi.TinyFaceDetectorOptions({ inputSize: INPUT_SIZE, scoreThreshold: SCORE_THRESHOLD });
  const results = [];
  for (const path of images) {
    const { width, height, tensor } = readPpm(path);
    const faces = await faceapi.detectAllFaces(tensor, options)
      .withFaceLandmarks()
      .withAgeAndGender()
      .withFaceDescriptors();
    tensor.dispose();
    results.push({
      image: basename(path, '.ppm'),
      width,
      height,
      faces: faces.map((face) => ({
        box: [face.detection.box.x, face.detection.box.y, face.detection.box.width, face.detection.box.height].map(round),
        score: round(face.detection.score),
        landmarks: face.landmarks.positions.map((pt) => [round(pt.x), round(pt.y)]),
        age: round(face.age),
        gender: face.gender,
        genderProbability: round(face.genderProbability),
        descriptor: Array.from(face.descriptor, (v) => Math.round(v * 1e6) / 1e6),
      })),
    });
    process.stderr.write(`${path}: ${faces.length} face(s)\n`);
  }
  const versions = { faceApi: faceapi.version, tfjs: tf.version.tfjs, backend: tf.getBackend() };
  process.stdout.write(`${JSON.stringify({ versions, inputSize: INPUT_SIZE, scoreThreshold: SCORE_THRESHOLD, results })}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
