import { describe, expect, it } from "vitest";
import { STEPS, load, save, stepOn, tagOf, uuidv7 } from "./tour";

class Memory {
  map = new Map<string, string>();
  getItem = (k: string) => this.map.get(k) ?? null;
  setItem = (k: string, v: string) => void this.map.set(k, v);
  removeItem = (k: string) => void this.map.delete(k);
}

describe("the walk-through", () => {
  it("has an id that is a UUIDv7 of its start, so its tag is one the server takes", () => {
    const id = uuidv7(0x0193a0c41b2c, () => new Uint8Array(16).fill(0xff));
    expect(id).toBe("0193a0c4-1b2c-7fff-bfff-ffffffffffff");
    expect(tagOf(id)).toMatch(/^tour:[a-z0-9:-]{1,59}$/);
    expect(uuidv7()).not.toBe(uuidv7());
  });

  it("is saved and resumed where it was, and a damaged save is no walk-through", () => {
    const m = new Memory();
    expect(load(m)).toBeNull();
    const state = { id: uuidv7(), step: 3, made: 7, open: false };
    save(state, m);
    expect(load(m)).toEqual(state);
    for (const bad of ["{", "[]", JSON.stringify({ ...state, step: STEPS.length }), JSON.stringify({ ...state, id: "x" }), JSON.stringify({ ...state, made: "7" })]) {
      m.setItem("oshal.tour", bad);
      expect(load(m)).toBeNull();
    }
    save(null, m);
    expect(m.map.size).toBe(0);
  });

  it("covers each layer the seeds name, and each view starts at its own step", () => {
    const ids = STEPS.map((s) => s.id);
    for (const layer of ["deployment", "routing", "isolation", "security", "connectors", "lifecycle", "trading", "operations", "workflows"]) expect(ids).toContain(layer);
    expect(new Set(ids).size).toBe(ids.length);
    expect(STEPS[stepOn("routing")].id).toBe("routing");
    expect(STEPS[stepOn("integrations")].id).toBe("security");
    for (const s of STEPS) expect(s.targets.length).toBeGreaterThan(0);
  });
});
