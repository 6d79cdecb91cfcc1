/**
 * The scheduler's choice of sampling path: a step samples on the device (stepSampled) when the
 * option is on, the engine can, and every request taking a token from the step can; otherwise
 * it downloads logits. Either way every request gets its tokens, exactly once, in order.
 */
import { describe, expect, it } from 'vitest';
import type { StepEntry } from '../../lib/engine/engine.js';
import { UNREAD_ROW, type DeviceSampling, type Reduced } from '../../lib/sampling/index.js';
import { Scheduler, type NextToken } from '../../lib/serve/index.js';
import { SimClient, SimEngine, checkBlocks, simLayout, simReference } from './sim.js';

/** SimEngine that can also "sample on the device": the argmax of its fake logits. */
class SimDeviceEngine extends SimEngine {
  sampledSteps = 0;
  logitSteps = 0;
  readonly policies: (DeviceSampling | undefined)[][] = [];

  override async step(entries: readonly StepEntry[]): Promise<Float32Array[]> {
    this.logitSteps++;
    return super.step(entries);
  }

  async stepSampled(entries: readonly StepEntry[], sampling: readonly (DeviceSampling | undefined)[]): Promise<Reduced[]> {
    this.sampledSteps++;
    this.policies.push([...sampling]);
    const rows = await super.step(entries);
    return rows.map((row) => ({ token: row.indexOf(1), logprob: NaN, topLogprobs: [] }));
  }
}

/** A SimClient that also takes device-sampled tokens. */
class DeviceClient extends SimClient {
  deviceSpecs = 0;
  canSampleOnDevice(): boolean {
    return true;
  }
  deviceSampling(): DeviceSampling {
    this.deviceSpecs++;
    return { ...UNREAD_ROW, topLogprobs: 1 };
  }
  acceptSampled(s: Reduced): NextToken {
    const row = new Float32Array(50);
    row[s.token] = 1;
    return this.nextToken(row);
  }
}

async function runAll(engine: SimDeviceEngine, clients: SimClient[], deviceSampling?: boolean) {
  const onDevice: boolean[] = [];
  const sched = new Scheduler(engine, {
    prefillChunk: 3,
    ...(deviceSampling === undefined ? {} : { deviceSampling }),
    onStep: (i) => {
      onDevice.push(i.sampledOnDevice);
      checkBlocks(engine);
    },
  });
  for (const c of clients) sched.submit(c);
  await sched.idle();
  return onDevice;
}

const prompts = [
  [1, 2, 3, 4, 5, 6, 7],
  [9, 8],
  [4, 4, 4, 4],
];

describe('scheduler: device or host sampling per step', () => {
  it('device-capable clients on a device-capable engine: every step samples on the device, same tokens', async () => {
    const engine = new SimDeviceEngine(simLayout('ma'), 64);
    const clients = prompts.map((p) => new DeviceClient(p, 6));
    const onDevice = await runAll(engine, clients);
    expect(onDevice.every(Boolean)).toBe(true);
    expect(engine.logitSteps).toBe(0);
    expect(engine.sampledSteps).toBe(onDevice.length);
    clients.forEach((c, i) => {
      expect(c.tokens).toEqual(simReference(prompts[i], 6));
      expect(c.deviceSpecs).toBe(6); // one policy per token, none for prefill chunks short of the end
    });
    // rows nobody reads (prefill chunks short of their prompt's end) get no policy
    expect(engine.policies.flat().filter((p) => p === undefined).length).toBeGreaterThan(0);
  });

  it('one client that cannot sample on the device sends the steps it samples in to the host', async () => {
    const engine = new SimDeviceEngine(simLayout('standard'), 64);
    const clients = [new DeviceClient(prompts[0], 6), new SimClient(prompts[1], 3), new DeviceClient(prompts[2], 6)];
    const onDevice = await runAll(engine, clients);
    expect(engine.logitSteps).toBeGreaterThan(0);
    expect(engine.sampledSteps).toBeGreaterThan(0); // once the host-only client is done
    expect(onDevice.filter((d) => !d).length).toBe(engine.logitSteps);
    clients.forEach((c, i) => expect(c.tokens).toEqual(simReference(c.promptIds, [6, 3, 6][i])));
    expect(clients[0] instanceof DeviceClient && clients[0].deviceSpecs).toBeLessThan(6);
  });

  it('deviceSampling: false keeps every step on the host', async () => {
    const engine = new SimDeviceEngine(simLayout('ma'), 64);
    const clients = prompts.map((p) => new DeviceClient(p, 5));
    const onDevice = await runAll(engine, clients, false);
    expect(onDevice.some(Boolean)).toBe(false);
    expect(engine.sampledSteps).toBe(0);
    clients.forEach((c, i) => {
      expect(c.tokens).toEqual(simReference(prompts[i], 5));
      expect((c as DeviceClient).deviceSpecs).toBe(0);
    });
    expect(() => new Scheduler(engine, { deviceSampling: 'yes' as unknown as boolean })).toThrow(/deviceSampling must be a boolean/);
  });
});
