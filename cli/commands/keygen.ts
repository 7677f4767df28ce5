import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { Command } from "commander";
import { z } from "zod";
import {
  clientIdOf,
  encodePublicKey,
  generateIdentity,
  type Identity,
  loadIdentity,
  saveIdentity,
} from "../../common/crypto/identity.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { num } from "../options.js";

export interface KeygenOptions {
  /** Where to write the identity file. */
  out: string;
  /** Replace an existing file (the old key is lost). Default false. */
  force?: boolean;
}

export interface KeygenResult {
  /** Base64 public key: the line to add to the coordinator's allowlist. */
  publicKey: string;
  clientId: string;
  /** Absolute path of the written file. */
  path: string;
}

const keygenOptionsSchema = z.object({
  out: z.string().min(1, { error: "--out must name a file" }),
  force: z.boolean().optional(),
});

/** Generates a client identity and writes it (mode 0600). The library call behind `fedsim keygen`. */
export async function runKeygen(options: KeygenOptions): Promise<KeygenResult> {
  const parsed = keygenOptionsSchema.safeParse(options);
  if (!parsed.success) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      "keygen: invalid options",
      parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`),
    );
  }
  const path = resolve(parsed.data.out);
  if (!(parsed.data.force ?? false) && existsSync(path)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `${path} already exists`, [
      "use --force to replace it (the old key is lost), or choose another --out",
    ]);
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const identity = generateIdentity();
  await saveIdentity(path, identity, { overwrite: parsed.data.force ?? false });
  return { publicKey: encodePublicKey(identity.publicKey), clientId: clientIdOf(identity.publicKey), path };
}

/** Node i's identity file in a `--dir`: what `fedsim clients --identity-dir DIR` reads. */
export function nodeIdentityPath(dir: string, index: number): string {
  return join(dir, `node-${index}.key`);
}

/** The allowlist `fedsim keygen --dir` writes beside the key files. */
export const ALLOWLIST_FILE = "allowlist.txt";

export interface KeygenDirResult {
  /** Absolute path of the allowlist written, one line per node. */
  allowlist: string;
  created: number;
  /** Key files that were there already and were kept (with --force they are replaced instead). */
  kept: number;
}

/**
 * Identities for nodes 0..count-1 in `dir` (node-<i>.key, 0600), and `dir/allowlist.txt` with one
 * line per node for the coordinator's --allow. Existing key files are kept, so running it again
 * with a larger count adds nodes without locking out the earlier ones; `force` replaces them all.
 */
export async function runKeygenDir(options: {
  dir: string;
  count: number;
  force?: boolean;
}): Promise<KeygenDirResult> {
  const dir = resolve(options.dir);
  if (!Number.isInteger(options.count) || options.count < 1) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `--count must be a positive integer, got ${options.count}`,
    );
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const lines = [
    `# fedsim keygen --dir: ${options.count} node identities; pass this file to fedsim coordinator --allow`,
  ];
  let created = 0;
  let kept = 0;
  for (let i = 0; i < options.count; i++) {
    const file = nodeIdentityPath(dir, i);
    let identity: Identity;
    if (existsSync(file) && !(options.force ?? false)) {
      identity = await loadIdentity(file);
      kept++;
    } else {
      identity = generateIdentity();
      await saveIdentity(file, identity, { overwrite: options.force ?? false });
      created++;
    }
    lines.push(`${encodePublicKey(identity.publicKey)} node-${i} ${clientIdOf(identity.publicKey)}`);
  }
  const allowlist = join(dir, ALLOWLIST_FILE);
  await writeFile(allowlist, `${lines.join("\n")}\n`);
  return { allowlist, created, kept };
}

export function keygenCommand(): Command {
  return new Command("keygen")
    .description(
      "generate a client identity key file (ed25519, mode 0600) and print its allowlist line; or, with --dir and --count, one per node of fedsim clients and their allowlist",
    )
    .option("--out <path>", "where to write the identity file")
    .option("--dir <dir>", "write node-0.key ... and allowlist.txt here, for fedsim clients --identity-dir")
    .option("--count <n>", "with --dir: how many node identities", num)
    .option("--force", "overwrite existing identity files (the old keys are lost)", false)
    .action(async (opts: { out?: string; dir?: string; count?: number; force: boolean }) => {
      if ((opts.out === undefined) === (opts.dir === undefined)) {
        throw new FedsimError(ErrorCode.INVALID_CONFIG, "give either --out FILE or --dir DIR --count N");
      }
      if (opts.dir !== undefined) {
        if (opts.count === undefined)
          throw new FedsimError(ErrorCode.INVALID_CONFIG, "--dir needs --count N");
        const result = await runKeygenDir({ dir: opts.dir, count: opts.count, force: opts.force });
        console.log(
          `wrote ${result.created} identity file(s) in ${resolve(opts.dir)} (mode 0600)${result.kept > 0 ? `, kept ${result.kept} that were there` : ""}`,
        );
        console.log(`allowlist for fedsim coordinator --allow: ${result.allowlist}`);
        return;
      }
      const result = await runKeygen({ out: opts.out as string, force: opts.force });
      console.log(`wrote identity ${result.path} (mode 0600)`);
      console.log(`client id: ${result.clientId}`);
      console.log("add this line to the coordinator's allowlist:");
      console.log(`${result.publicKey} ${result.clientId}`);
    });
}
