// Types for tests/native-setup.test.ts.
export function nativeOverWasm(results: unknown): [number, number] | undefined;
export function slowdownPhrase(file?: string): string;
export function wasmNotice(reason: string, remedy?: string, file?: string): string;
