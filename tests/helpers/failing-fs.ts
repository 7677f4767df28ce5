import { type CheckpointFileHandle, type CheckpointFs, nodeCheckpointFs } from "../../server/checkpoint.js";

/** Where a full disk (or a sick one) can strike a checkpoint write. */
export type FailingStep = "mkdir" | "open" | "write" | "fsync" | "close" | "rename" | "dirsync";

export interface FailingFsOptions {
  step: FailingStep;
  /** The system error's code (default ENOSPC). */
  code?: string;
  /** For "write": how many bytes of the failing write still reach the file first (a short write). */
  partialBytes?: number;
  /** For "write": which write call fails, 1-based (default 1: the first). */
  nthWrite?: number;
}

/** An error shaped like the ones node:fs rejects with. */
export function systemError(code: string, syscall: string, file?: string): NodeJS.ErrnoException {
  const text: Record<string, string> = {
    ENOSPC: "no space left on device",
    EIO: "i/o error",
    EINVAL: "invalid argument",
    EROFS: "read-only file system",
  };
  const err = new Error(
    `${code}: ${text[code] ?? "failure"}, ${syscall}${file ? ` '${file}'` : ""}`,
  ) as NodeJS.ErrnoException;
  err.code = code;
  err.syscall = syscall;
  if (file) err.path = file;
  return err;
}

/**
 * The real filesystem, except that one step fails with a system error. `calls` records every
 * operation in order, so tests can see what was attempted and what was cleaned up.
 */
export function failingFs(options: FailingFsOptions): CheckpointFs & { calls: string[] } {
  const code = options.code ?? "ENOSPC";
  const calls: string[] = [];
  let writes = 0;
  const real = nodeCheckpointFs;
  const fail = (step: FailingStep, syscall: string, file?: string) => {
    if (options.step === step) throw systemError(code, syscall, file);
  };
  return {
    calls,
    async mkdir(dir, opts) {
      calls.push(`mkdir ${dir}`);
      fail("mkdir", "mkdir", dir);
      return real.mkdir(dir, opts);
    },
    async open(file, flags, mode) {
      calls.push(`open ${file} ${flags}`);
      const isDirectory = flags === "r";
      if (!isDirectory) fail("open", "open", file);
      const handle = await real.open(file, flags, mode);
      const wrapped: CheckpointFileHandle = {
        async writeFile(data) {
          calls.push(`write ${data.byteLength}`);
          writes++;
          if (options.step === "write" && writes === (options.nthWrite ?? 1)) {
            const partial = Math.min(options.partialBytes ?? 0, data.byteLength);
            if (partial > 0) await handle.writeFile(data.subarray(0, partial));
            throw systemError(code, "write");
          }
          return handle.writeFile(data);
        },
        async sync() {
          calls.push(`fsync ${file}`);
          fail(isDirectory ? "dirsync" : "fsync", "fsync");
          return handle.sync();
        },
        async close() {
          calls.push(`close ${file}`);
          await handle.close();
          if (!isDirectory) fail("close", "close");
        },
      };
      return wrapped;
    },
    async rename(from, to) {
      calls.push(`rename ${from} ${to}`);
      fail("rename", "rename", from);
      return real.rename(from, to);
    },
    async rm(file, opts) {
      calls.push(`rm ${file}`);
      return real.rm(file, opts);
    },
    readFile: (file) => real.readFile(file),
  };
}
