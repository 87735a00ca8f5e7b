// The container suite's checks: each is named, bounded by a timeout, and
// prints one line; the run ends with `N passed, M failed`.

export class TimeoutError extends Error {}

/** Resolves like PROMISE, or rejects after MS with "WHAT timed out". */
export function within(ms, promise, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls FN (truthy = done) every STEP ms for at most MS; returns its value. */
export async function until(ms, fn, what, step = 20) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new TimeoutError(`${what}: not within ${ms} ms`);
    await sleep(step);
  }
}

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

export function assertEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

export class Harness {
  constructor() {
    this.passed = 0;
    this.failed = 0;
    this.skipped = 0;
    this.failures = [];
    this.notes = [];
    this.section = '';
  }

  /** Runs FN as the check NAME within TIMEOUT ms. Returns its value, or undefined on failure. */
  async check(name, fn, { timeout = 15_000 } = {}) {
    const full = this.section ? `${this.section}: ${name}` : name;
    const t0 = Date.now();
    try {
      const value = await within(timeout, Promise.resolve().then(fn), name);
      this.passed++;
      console.log(`PASS ${full} (${Date.now() - t0} ms)`);
      return value ?? true;
    } catch (err) {
      this.failed++;
      this.failures.push(full);
      console.log(`FAIL ${full} (${Date.now() - t0} ms): ${err && err.stack ? err.stack : err}`);
      return undefined;
    }
  }

  skip(name, why) {
    this.skipped++;
    console.log(`SKIP ${this.section}: ${name}: ${why}`);
  }

  /** A measurement worth reporting (timings); repeated in the summary. */
  note(text) {
    const line = this.section ? `${this.section}: ${text}` : text;
    this.notes.push(line);
    console.log(`NOTE ${line}`);
  }

  summary() {
    if (this.notes.length) {
      console.log('\nMeasurements:');
      for (const n of this.notes) console.log(`  ${n}`);
    }
    if (this.failures.length) {
      console.log('\nFailed:');
      for (const f of this.failures) console.log(`  ${f}`);
    }
    const skipped = this.skipped ? `, ${this.skipped} skipped` : '';
    console.log(`\n${this.passed} passed, ${this.failed} failed${skipped}`);
  }
}
