import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { Command } from "commander";
import { z } from "zod";
import { clientIdOf, encodePublicKey, generateIdentity, saveIdentity } from "../../common/crypto/identity.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";

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

export function keygenCommand(): Command {
  return new Command("keygen")
    .description("generate a client identity key file (ed25519, mode 0600) and print its allowlist line")
    .requiredOption("--out <path>", "where to write the identity file")
    .option("--force", "overwrite an existing identity file (the old key is lost)", false)
    .action(async (opts: { out: string; force: boolean }) => {
      const result = await runKeygen({ out: opts.out, force: opts.force });
      console.log(`wrote identity ${result.path} (mode 0600)`);
      console.log(`client id: ${result.clientId}`);
      console.log("add this line to the coordinator's allowlist:");
      console.log(`${result.publicKey} ${result.clientId}`);
    });
}
