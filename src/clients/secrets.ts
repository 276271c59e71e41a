// What counts as a secret when a client config holds one in plain text. A
// false positive only costs an environment variable; a false negative copies
// a credential into a file that gets committed, so the rules lean wide.

const SECRET_NAME = /(^|[^a-z])(token|secret|password|passwd|pwd|pass|api[-_]?key|apikey|key|credential|credentials|auth|authorization|cookie|session|private|pat|dsn|signature)([^a-z]|$)/i;
const SECRET_HEADER = /^(authorization|proxy-authorization|cookie|x-api-key|api-key|x-auth-token)$/i;

/** Known token shapes: GitHub, OpenAI/Anthropic, Slack, AWS, GitLab, Stripe, JWTs. */
const SECRET_VALUE = /^(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|sk-[A-Za-z0-9_-]{16,}|xox[abposr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|glpat-[A-Za-z0-9_-]{16,}|[rs]k_(live|test)_[A-Za-z0-9]{16,}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})$/;

/** Generated keys: a long run of upper and lower case letters and digits, or of hex digits. Names and versions have `.`, `@` or one case. */
function looksGenerated(value: string): boolean {
  if (/^[a-f0-9]{32,}$/i.test(value)) return true;
  return /^[A-Za-z0-9_+=-]{24,}$/.test(value) && /[a-z]/.test(value) && /[A-Z]/.test(value) && /\d/.test(value);
}

export function looksSecretValue(value: string): boolean {
  return SECRET_VALUE.test(value) || looksGenerated(value);
}

/** An environment variable, flag or query parameter name that holds secrets. */
export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name.replace(/([a-z])([A-Z])/g, '$1_$2'));
}

export function isSecretHeader(name: string): boolean {
  return SECRET_HEADER.test(name) || isSecretName(name);
}

/** `Bearer abc` → `Bearer ` and `abc`: the scheme stays in the file, the credential does not. */
export function splitScheme(value: string): [string, string] {
  const match = /^(Bearer|Basic|Token|Bot|ApiKey)\s+(\S.*)$/i.exec(value);
  return match === null ? ['', value] : [`${match[1]} `, match[2] ?? ''];
}
