/** A one-line progress bar on stderr when it is a terminal (plain periodic lines otherwise), silent when quiet. */
export class ProgressBar {
  private lastPlain = 0;
  constructor(private readonly quiet: boolean, private readonly stream: NodeJS.WriteStream = process.stderr) {}

  update(label: string, done: number, total: number, extra = ''): void {
    if (this.quiet) return;
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    if (this.stream.isTTY) {
      const width = 24;
      const filled = Math.round(frac * width);
      this.stream.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${extra}\x1b[K`);
      if (done >= total) this.stream.write('\n');
    } else if (done >= total || Date.now() - this.lastPlain > 5000) {
      this.lastPlain = Date.now();
      this.stream.write(`${label} ${done}/${total} ${extra}\n`);
    }
  }

  log(line: string): void {
    if (!this.quiet) console.log(line);
  }
}
