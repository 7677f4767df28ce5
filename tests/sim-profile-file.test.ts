import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { Fleet } from "../scenarios/sim/fleet.js";
import { loadDeviceProfiles, parseDeviceProfiles } from "../scenarios/sim/profile-file.js";

const dir = mkdtempSync(join(tmpdir(), "fedsim-profiles-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

/** The FedsimError `promise` rejects with (or `fn` throws). */
async function failure(run: () => unknown): Promise<FedsimError> {
  try {
    await run();
  } catch (err) {
    expect(err).toBeInstanceOf(FedsimError);
    return err as FedsimError;
  }
  throw new Error("expected a FedsimError");
}

describe("device profile files", () => {
  it("loads a CSV: one profile per line, empty cells take defaults", async () => {
    const path = file(
      "fleet.csv",
      [
        "name,share,speed,downlinkMbps,uplinkMbps,latencyMs,requiresCharging,utcOffsetHours",
        "old phone,0.7,0.2,8,2,80,true,",
        '"new phone",0.3,1,50,12,,0,5.5',
        "",
      ].join("\n"),
    );
    const profiles = await loadDeviceProfiles(path);
    expect(profiles).toEqual([
      {
        name: "old phone",
        share: 0.7,
        speed: 0.2,
        downlinkMbps: 8,
        uplinkMbps: 2,
        latencyMs: 80,
        dropoutPerHour: 0,
        requiresCharging: true,
      },
      {
        name: "new phone",
        share: 0.3,
        speed: 1,
        downlinkMbps: 50,
        uplinkMbps: 12,
        latencyMs: 0,
        dropoutPerHour: 0,
        requiresCharging: false,
        utcOffsetHours: 5.5,
      },
    ]);
    const fleet = new Fleet(profiles, 1);
    const counts = fleet.tierCounts(10_000);
    expect(Math.abs(counts[0] / 10_000 - 0.7)).toBeLessThan(0.03);
  });

  it("loads JSON, as an array or under profiles, with distributions", async () => {
    const profiles = [
      { name: "a", speed: { kind: "lognormal", median: 0.5, sigma: 0.3 }, downlinkMbps: 20, uplinkMbps: 5 },
      {
        name: "b",
        secondsPerExample: 0.01,
        downlinkMbps: { kind: "uniform", min: 1, max: 9 },
        uplinkMbps: 1,
      },
    ];
    const fromArray = await loadDeviceProfiles(file("a.json", JSON.stringify(profiles)));
    const fromObject = await loadDeviceProfiles(file("b.json", JSON.stringify({ profiles })));
    expect(fromArray).toEqual(fromObject);
    expect(fromArray[0].speed).toEqual({ kind: "lognormal", median: 0.5, sigma: 0.3 });
    expect(new Fleet(fromArray, 4).device(0).tierName).toMatch(/^[ab]$/);
  });

  it("a broken CSV names the file, the line and the field of every problem", async () => {
    const path = file(
      "broken.csv",
      ["name,downlinkMbps,uplinkMbps", "ok,10,2", "bad,fast,2", "neg,10,-3", "short,10"].join("\n"),
    );
    const err = await failure(() => loadDeviceProfiles(path));
    expect(err.code).toBe(ErrorCode.BAD_DATA);
    expect(err.message).toContain("broken.csv");
    expect(err.details).toContain(`${path}: line 3: downlinkMbps: "fast" is not a number`);
    expect(err.details.some((d) => d.includes("broken.csv: line 4: uplinkMbps:"))).toBe(true);
    expect(err.details).toContain(`${path}: line 5: 2 cells for 3 columns`);
    const flag = await failure(() =>
      parseDeviceProfiles("name,downlinkMbps,uplinkMbps,requiresCharging\nx,1,1,maybe", "csv", "f.csv"),
    );
    expect(flag.details).toEqual(['f.csv: line 2: requiresCharging: "maybe" is not true, false, 1 or 0']);
  });

  it("a CSV header with an unknown or repeated column is refused, listing the allowed ones", async () => {
    const err = await failure(() =>
      parseDeviceProfiles("name,downlink,uplinkMbps,name\nx,1,1,x", "csv", "f.csv"),
    );
    expect(err.code).toBe(ErrorCode.BAD_DATA);
    expect(err.details).toContain('f.csv: line 1: unknown column "downlink"');
    expect(err.details).toContain('f.csv: line 1: column "name" appears twice');
    expect(err.details.at(-1)).toContain("downlinkMbps");
  });

  it("broken JSON: a syntax error, a wrong shape, and a bad field by path", async () => {
    expect((await failure(() => parseDeviceProfiles("[{", "json", "x.json"))).message).toContain(
      "x.json: not valid JSON",
    );
    expect((await failure(() => parseDeviceProfiles('{"name":"a"}', "json", "x.json"))).message).toContain(
      "expected an array of profiles",
    );
    const err = await failure(() =>
      parseDeviceProfiles(
        JSON.stringify([
          { name: "a", downlinkMbps: 1, uplinkMbps: 1 },
          { name: "b", downlinkMbps: 1, uplinkMbps: "x", colour: "red" },
        ]),
        "json",
        "x.json",
      ),
    );
    expect(err.details.some((d) => d.startsWith("x.json: profiles.1: uplinkMbps:"))).toBe(true);
    expect(err.details.some((d) => d.startsWith("x.json: profiles.1:") && d.includes("colour"))).toBe(true);
  });

  it("shares on some profiles but not others, or no profiles at all, are refused", async () => {
    const mixed = await failure(() =>
      parseDeviceProfiles("name,share,downlinkMbps,uplinkMbps\na,1,1,1\nb,,1,1", "csv", "m.csv"),
    );
    expect(mixed.details).toContain("m.csv: share: give every profile a share, or none (equal shares)");
    expect((await failure(() => parseDeviceProfiles("[]", "json", "e.json"))).details).toContain(
      "e.json: no device profiles",
    );
  });

  it("a missing file and an unknown extension get their own codes", async () => {
    expect((await failure(() => loadDeviceProfiles(join(dir, "nope.csv")))).code).toBe(
      ErrorCode.DATA_NOT_FOUND,
    );
    const err = await failure(() => loadDeviceProfiles(file("fleet.yaml", "x")));
    expect(err.code).toBe(ErrorCode.BAD_DATA);
    expect(err.message).toContain(".yaml");
  });
});
