import type { Server } from "node:net";
import { ErrorCode, FedsimError } from "../common/errors.js";

/**
 * Starts listening; a port that is taken or forbidden becomes a one-line PORT_IN_USE (the usual
 * operator mistake), not a stack trace.
 */
export function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE" || err.code === "EACCES") {
        const why = err.code === "EADDRINUSE" ? "is already in use" : "may not be opened by this user";
        reject(new FedsimError(ErrorCode.PORT_IN_USE, `port ${port} on ${host} ${why}`));
      } else {
        reject(err);
      }
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
}
