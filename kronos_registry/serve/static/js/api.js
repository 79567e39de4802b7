// Talking to the server: fetch with the user's token, every failure as a problem (RFC 9457),
// and reading a forecast response. No DOM here. Every URL is relative to the page's <base>
// (the server's --root-path), so the calls go through a reverse proxy's prefix too.

// A failure the page can show: the fields of a problem+json body (status, title, detail, hint, field).
export class Problem extends Error {
  constructor(body) {
    super(body.detail || body.title || "request failed");
    Object.assign(this, body);
  }
}

function authHeaders(token) {
  const value = (token || "").trim();
  return value ? { Authorization: "Bearer " + value } : {};
}

// fetch that turns every failure into a Problem the page can show; resolves to the JSON body.
// `token` (the server's --token, if any) goes in the Authorization header.
export async function request(url, { token, ...options } = {}) {
  let response;
  try {
    response = await fetch(url, { ...options, headers: { ...authHeaders(token), ...(options.headers || {}) } });
  } catch (error) {
    throw new Problem({ title: "Server unreachable", detail: String(error.message || error),
                        hint: "Is `kronos-registry serve` still running at " + location.host + "?" });
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  if (!response.ok) {
    const problem = body && typeof body === "object" && !Array.isArray(body) ? body : {};
    throw new Problem({
      status: problem.status || response.status,
      title: problem.title || response.statusText || "Request failed",
      detail: problem.detail || (body ? "" : text.slice(0, 300)),
      hint: pageHint(response.status) || problem.hint,
      field: problem.field, type: problem.type,
    });
  }
  return body;
}

// What to do in this page, where the server's hint speaks of HTTP headers.
function pageHint(status) {
  if (status === 401) return "Enter the server's token under \"Access token\" at the top of the page.";
  return undefined;
}

// The quantile levels of a forecast response ("0.1", "0.5", ...), lowest first.
export function quantileKeys(body) {
  return Object.keys(body.quantiles || {}).sort((a, b) => Number(a) - Number(b));
}
