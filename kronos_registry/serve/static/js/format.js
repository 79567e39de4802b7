// Text for people: times, parameter counts and byte sizes as the page shows them.

// A time in seconds since the epoch as "YYYY-MM-DD HH:MM" (UTC, as the chart draws it).
export function stamp(seconds) {
  return new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ");
}

export function formatParams(params, text) {
  if (typeof params !== "number") return text || "unknown";
  if (params >= 1e9) return (params / 1e9).toFixed(1) + "B";
  if (params >= 1e6) return (params / 1e6).toFixed(1) + "M";
  if (params >= 1e3) return (params / 1e3).toFixed(1) + "k";
  return String(params);
}

export function formatBytes(bytes) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = bytes, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return value.toFixed(unit ? 1 : 0) + " " + units[unit];
}
