/** Plain-text tables for the CLI: right-aligned numbers, left-aligned text. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const isNum = (s: string) => /^[-+]?[\d.,]+( ?[A-Za-z%/×]+)?$/.test(s);
  const line = (r: readonly string[]) =>
    r.map((cell, c) => (c > 0 && isNum(cell) ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
