export const usd = (nusd: number) => `$${(nusd / 1e9).toFixed(nusd !== 0 && Math.abs(nusd) < 1e7 ? 6 : 4)}`;
export const time = (ms: number) => new Date(ms).toLocaleTimeString();
/** A clock time to the millisecond: `14:03:07.482`. */
export const millis = (ms: number) => {
  const d = new Date(ms);
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, "0")}`;
};
export const ago = (ms: number) => {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
};
export const short = (id: string) => id.slice(-8);
