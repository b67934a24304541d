/** SIGINT/SIGTERM in the CLI: stop long work at its next batch. */

/** SIGINT/SIGTERM abort the running epoch at its next batch; the run then stops with its last whole checkpoint. */
export function stopOnSignals(): { signal: AbortSignal; received: () => NodeJS.Signals | undefined; dispose: () => void } {
  const controller = new AbortController();
  let got: NodeJS.Signals | undefined;
  const handler = (sig: NodeJS.Signals) => {
    if (got) process.exit(sig === 'SIGINT' ? 130 : 143); // a second signal: stop now
    got = sig;
    console.error(`\n${sig}: stopping at the next batch (send it again to stop at once)`);
    controller.abort();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: controller.signal,
    received: () => got,
    dispose: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
