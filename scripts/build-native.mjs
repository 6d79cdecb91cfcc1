#!/usr/bin/env node
/**
 * Builds the native addon with cmake-js, with the CUDA backend wherever it can be built
 * (`npm install` runs this). MIXATTN_CUDA (env, or --cuda=AUTO|ON|OFF) as in CMakeLists.txt:
 *   AUTO (default)  CUDA backend when nvcc and cuBLAS are found, else the CPU backend alone;
 *   ON              the CUDA backend or a failed build;   OFF  CPU backend only.
 *
 * cuBLAS: used from the CUDA toolkit when it has it, else from CUBLAS_ROOT (env), else the pip
 * wheel `nvidia-cublas` is installed (--no-deps, seconds from a local index) into
 * build/cublas-venv and its nvidia/cu13 folder passed as -DCUBLAS_ROOT. If that install fails,
 * AUTO builds the CPU-only addon and says why. Other arguments go to `cmake-js configure`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const args = process.argv.slice(2);
const cudaArg = args.find((a) => a.startsWith('--cuda='));
const passThrough = args.filter((a) => a !== cudaArg);
const mode = (cudaArg?.slice(7) ?? process.env.MIXATTN_CUDA ?? 'AUTO').toUpperCase();
if (!['AUTO', 'ON', 'OFF'].includes(mode)) fail(`MIXATTN_CUDA must be AUTO, ON or OFF (got '${mode}')`);

function log(msg) {
  console.log(`mixattn: ${msg}`);
}
function fail(msg) {
  console.error(`mixattn: ${msg}`);
  process.exit(1);
}
function run(cmd, argv, opts = {}) {
  return spawnSync(cmd, argv, { cwd: root, stdio: 'inherit', ...opts });
}

function findNvcc() {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const v of ['CUDA_HOME', 'CUDA_PATH', 'CUDACXX']) {
    const p = process.env[v];
    if (p) dirs.push(v === 'CUDACXX' ? dirname(p) : join(p, 'bin'));
  }
  dirs.push('/usr/local/cuda/bin');
  for (const d of dirs) if (existsSync(join(d, 'nvcc'))) return realpathSync(join(d, 'nvcc'));
  return undefined;
}

function hasCublasLt(prefix) {
  if (existsSync(join(prefix, 'include', 'cublasLt.h'))) return true;
  const targets = join(prefix, 'targets');
  return existsSync(targets) && readdirSync(targets).some((t) => existsSync(join(targets, t, 'include', 'cublasLt.h')));
}

/** nvidia/cu13 (or cu12) inside a venv, when it holds cublasLt.h. */
function wheelRoot(venv) {
  const lib = join(venv, 'lib');
  if (!existsSync(lib)) return undefined;
  for (const py of readdirSync(lib).filter((n) => n.startsWith('python'))) {
    for (const cu of ['cu13', 'cu12']) {
      const r = join(lib, py, 'site-packages', 'nvidia', cu);
      if (existsSync(join(r, 'include', 'cublasLt.h'))) return r;
    }
  }
  return undefined;
}

/** Installs nvidia-cublas into build/cublas-venv; returns its root, or why it could not. */
function cublasFromPip() {
  const venv = join(root, 'build', 'cublas-venv');
  let have = wheelRoot(venv);
  if (have) return { root: have };
  log('the CUDA toolkit has no cuBLAS: installing the pip wheel nvidia-cublas into build/cublas-venv');
  const python = process.env.PYTHON ?? 'python3';
  const mk = run(python, ['-m', 'venv', venv], { stdio: 'pipe' });
  if (mk.status !== 0) return { why: `\`${python} -m venv\` failed: ${(mk.stderr ?? '').toString().trim() || mk.error?.message}` };
  const pip = run(join(venv, 'bin', 'pip'), ['install', '--no-deps', '--disable-pip-version-check', '-q', 'nvidia-cublas'], { stdio: 'pipe', timeout: 600_000 });
  if (pip.status !== 0) return { why: `pip install nvidia-cublas failed: ${((pip.stderr ?? '').toString().trim().split('\n').pop() ?? '') || pip.error?.message}` };
  have = wheelRoot(venv);
  return have ? { root: have } : { why: 'the nvidia-cublas wheel has no cublasLt.h' };
}

const defines = [`--CDMIXATTN_CUDA=${mode}`];
if (mode !== 'OFF') {
  const nvcc = findNvcc();
  if (!nvcc) {
    if (mode === 'ON') fail('MIXATTN_CUDA=ON but nvcc was not found');
    log('nvcc not found: building the CPU backend only');
  } else {
    defines.push(`--CDCMAKE_CUDA_COMPILER=${nvcc}`);
    if (hasCublasLt(dirname(dirname(nvcc)))) {
      defines.push('--CDCUBLAS_ROOT=');
    } else if (process.env.CUBLAS_ROOT) {
      defines.push(`--CDCUBLAS_ROOT=${process.env.CUBLAS_ROOT}`);
    } else {
      const got = cublasFromPip();
      if (got.root) {
        defines.push(`--CDCUBLAS_ROOT=${got.root}`);
      } else if (mode === 'ON') {
        fail(`MIXATTN_CUDA=ON but cuBLAS is missing: ${got.why}`);
      } else {
        log(`building the CPU backend only: ${got.why}`);
        defines[0] = '--CDMIXATTN_CUDA=OFF';
      }
    }
  }
}

const cmakeJs = join(dirname(createRequire(import.meta.url).resolve('cmake-js/package.json')), 'bin', 'cmake-js');
// configure every time (cmake-js `compile` keeps a stale cache), then build.
for (const step of [['configure', ...defines, ...passThrough], ['build']]) {
  const r = run(process.execPath, [cmakeJs, ...step]);
  if (r.status !== 0) fail(`cmake-js ${step[0]} failed`);
}
