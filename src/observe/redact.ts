// URL credentials: remote servers are often configured with a token in the
// URL (`https://user:pass@host/`, `?apikey=…`). Anything that shows a URL to a
// person (plan, status, every log line, every JSON-RPC error) shows it through here.

export const REDACTED = 'REDACTED';

/** Parameter names that carry credentials by convention, compared without case, `-` or `_`. */
const CREDENTIAL_PARAM = /token|secret|passw|^pass$|pwd|apikey|key$|^sig$|signature|credential|^auth$|authorization|session/;

/** A URL with its userinfo and credential-named query (and fragment) parameters replaced by `REDACTED`. */
export function redactUrl(url: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url);
  if (scheme === null) return url;
  const rest = url.slice(scheme[0].length);
  const authorityEnd = rest.search(/[/?#]/);
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd);
  const tail = authorityEnd < 0 ? '' : rest.slice(authorityEnd);
  // The last `@` ends the userinfo: a password may itself contain `@`.
  const at = authority.lastIndexOf('@');
  const host = at < 0 ? authority : `${authority.slice(0, at).includes(':') ? `${REDACTED}:${REDACTED}` : REDACTED}@${authority.slice(at + 1)}`;
  return `${scheme[0]}${host}${redactParams(tail)}`;
}

/** Every URL inside free text (a command line, an error message), redacted. */
export function redactUrls(text: string): string {
  return text.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi, redactUrl);
}

/** Rewrites only the values of credential-named parameters; everything else keeps its exact spelling. */
function redactParams(tail: string): string {
  return tail.replace(/([?&#;])([^=&#;]*)=([^&#;]*)/g, (whole: string, sep: string, name: string) => (isCredentialName(name) ? `${sep}${name}=${REDACTED}` : whole));
}

function isCredentialName(name: string): boolean {
  let decoded: string;
  try {
    decoded = decodeURIComponent(name.replaceAll('+', ' '));
  } catch {
    decoded = name;
  }
  return CREDENTIAL_PARAM.test(decoded.toLowerCase().replace(/[-_.\s]/g, ''));
}
