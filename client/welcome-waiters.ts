import { ErrorCode, FedsimError } from "../common/errors.js";

/** Callers of `ClientNode.connect()` waiting for the node's next welcome, each with its own timeout. */
export class WelcomeWaiters {
  private waiters: { resolve: (id: string) => void; reject: (err: Error) => void }[] = [];

  /** Resolves with the client id at the next welcome; rejects after `timeoutMs` or on `rejectAll`. */
  wait(timeoutMs: number): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new FedsimError(ErrorCode.CLIENT_TIMEOUT, `not welcomed within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = {
        resolve: (id: string) => {
          clearTimeout(timer);
          resolve(id);
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.waiters.push(waiter);
    });
  }

  resolveAll(clientId: string): void {
    for (const w of this.take()) w.resolve(clientId);
  }

  rejectAll(err: Error): void {
    for (const w of this.take()) w.reject(err);
  }

  private take() {
    const waiters = this.waiters;
    this.waiters = [];
    return waiters;
  }
}
