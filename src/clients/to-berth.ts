import type { Credential, Server, UserCredential } from '../config/types.gen.ts';
import type { ClientServer, ContainerServer, Field, Fields, HttpServer, Reference, Report, StdioServer } from './model.ts';
import { envName, plainText } from './model.ts';
import { isSecretHeader, isSecretName, looksSecretValue, splitScheme } from './secrets.ts';

/**
 * Where secrets go. auto: what a client asks its user for becomes a
 * `fromUser` credential, plain-text secrets become `${env:…}`. env: all of
 * them `${env:…}`. user: all of them `fromUser`.
 */
export type SecretPolicy = 'auto' | 'env' | 'user';

export interface Imported {
  /** berth servers by name, in the order the file lists them. */
  readonly servers: readonly (readonly [string, Server])[];
  /** Servers left out, with why (each also reported as an error). */
  readonly skipped: readonly { readonly name: string; readonly why: string }[];
}

type Prompt = Extract<Reference, { kind: 'prompt' }>;

/** Turns what clients say about servers into berth servers; every change and every failure is reported. */
export function toBerthServers(list: readonly ClientServer[], policy: SecretPolicy, report: Report): Imported {
  const servers: (readonly [string, Server])[] = [];
  const skipped: { name: string; why: string }[] = [];
  const taken = new Set<string>();
  const secretValues = new Map<string, string>();
  for (const server of list) {
    const name = uniqueName(server, taken, report);
    if (server.kind === 'unsupported') {
      report('error', server.path, 'import_unsupported', `${server.name} is not imported: ${server.why}`);
      skipped.push({ name, why: server.why });
      continue;
    }
    const converter = new Converter(name, policy, report, secretValues);
    const converted = converter.server(server);
    if (converter.failed !== undefined || converted === undefined) {
      skipped.push({ name, why: converter.failed ?? 'see the errors above' });
      continue;
    }
    servers.push([name, { ...(server.description === undefined ? {} : { description: server.description }), ...converted }]);
  }
  return { servers, skipped };
}

/** A berth server name from a client's: lowercase, `-` for anything else, the part after `/` for registry names. */
function uniqueName(server: ClientServer, taken: Set<string>, report: Report): string {
  const base = server.name.split('/').at(-1) ?? server.name;
  const slug =
    base
      .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 60) || 'server';
  let name = slug;
  for (let n = 2; taken.has(name); n++) name = `${slug}-${n}`;
  taken.add(name);
  // A registry name (`io.github.user/weather`) going by its last part is the expected change, not news.
  if (name !== server.name && name !== base) report('warning', server.path, 'import_renamed', `${JSON.stringify(server.name)} is served as ${name}`, 'berth names are lowercase letters, digits and -', 'key');
  return name;
}

/** One server's conversion: failures mark it, secrets become references. */
class Converter {
  /** The first error, once one happened. */
  failed: string | undefined;
  readonly #name: string;
  readonly #policy: SecretPolicy;
  readonly #report: Report;
  readonly #secretValues: Map<string, string>;
  readonly #credentials: Record<string, UserCredential> = {};
  #perUserEnv = false;

  constructor(name: string, policy: SecretPolicy, report: Report, secretValues: Map<string, string>) {
    this.#name = name;
    this.#policy = policy;
    this.#report = report;
    this.#secretValues = secretValues;
  }

  server(server: StdioServer | HttpServer | ContainerServer): Server | undefined {
    if (server.kind === 'http') return this.#remote(server);
    if (server.kind === 'container') return this.#container(server);
    return this.#hosted(server);
  }

  #remote(server: HttpServer): Server {
    const url = this.#url(server.url);
    const headers = this.#headers(server.headers);
    const credentials = Object.keys(this.#credentials).length === 0 ? {} : { credentials: this.#credentials };
    return { type: 'remote', url, ...(server.transport === 'sse' ? { transport: 'sse' } : {}), ...(headers === undefined ? {} : { headers }), ...credentials };
  }

  #hosted(server: StdioServer): Server {
    const command = this.#text(server.command, 'command');
    const args = server.args.map((a, i) => this.#arg(a, server.args[i - 1]));
    const env = this.#env(server.env);
    const cwd = server.cwd === undefined ? undefined : this.#text(server.cwd, 'cwd');
    const type = this.#perUserEnv ? 'single-user' : 'multi-user';
    const rest = { ...(env === undefined ? {} : { env }) };
    const runtime = cwd === undefined ? packageRuntime(command, args) : undefined;
    if (runtime !== undefined) return { type, runtime: runtime.runtime, package: runtime.package, ...(runtime.args.length === 0 ? {} : { args: runtime.args }), ...rest };
    return { type, runtime: 'command', command, ...(args.length === 0 ? {} : { args }), ...(cwd === undefined ? {} : { cwd }), ...rest };
  }

  #container(server: ContainerServer): Server | undefined {
    const env = [...server.env];
    for (let i = 0; i < server.runtimeArgs.length; i++) {
      const flag = plainText(server.runtimeArgs[i]?.parts ?? []) ?? '';
      const value = server.runtimeArgs[i + 1];
      const set = /^(-e|--env)$/.test(flag) ? value : undefined;
      const [key, ...rest] = (set === undefined ? '' : (plainText(set.parts) ?? '')).split('=');
      if (set !== undefined && key !== undefined && key !== '') {
        env.push([key, { parts: rest.length === 0 ? [{ kind: 'env', name: key }] : [rest.join('=')], path: set.path, ...(set.secret === true ? { secret: true } : {}) }]);
        i++;
      } else if (flag.startsWith('-')) {
        this.#report('warning', server.runtimeArgs[i]?.path ?? server.path, 'import_runtime_argument', `docker option ${flag} is not imported: berth creates the container itself`, 'see backend settings in docs/config.md for mounts, networks and resources');
      }
    }
    const url = plainText(server.url.parts);
    const parsed = url === undefined || !URL.canParse(url) ? undefined : new URL(url);
    const port = parsed === undefined ? NaN : Number(parsed.port || (parsed.protocol === 'https:' ? 443 : 80));
    if (parsed === undefined || !Number.isInteger(port)) {
      this.#fail(server.url.path, 'import_container_port', `cannot tell the port the image listens on from ${JSON.stringify(url ?? '(a URL with inputs)')}`);
      return undefined;
    }
    this.#report('warning', server.path, 'import_container', `${server.image} runs as a container: it needs backend docker or kubernetes`);
    const args = server.args.map((a, i) => this.#arg(a, server.args[i - 1]));
    const converted = this.#env(env);
    const path = parsed.pathname === '/mcp' ? {} : { path: parsed.pathname };
    const type = this.#perUserEnv ? 'single-user' : 'multi-user';
    return { type, runtime: 'container', image: server.image, port, ...path, ...(server.transport === 'sse' ? { transport: 'sse' } : {}), ...(args.length === 0 ? {} : { args }), ...(converted === undefined ? {} : { env: converted }) };
  }

  #env(fields: Fields): Record<string, Credential> | undefined {
    if (fields.length === 0) return undefined;
    const out: Record<string, Credential> = {};
    for (const [key, field] of fields) {
      const [only] = field.parts;
      if (field.parts.length === 1 && typeof only === 'object' && only.kind === 'prompt' && this.#policy !== 'env') {
        this.#perUserEnv = true;
        out[key] = perUser(only);
        continue;
      }
      const literal = plainText(field.parts);
      if (literal !== undefined && literal !== '' && (field.secret === true || isSecretName(key) || looksSecretValue(literal))) {
        out[key] = this.#secret(key, literal, field, 'env');
        continue;
      }
      out[key] = this.#text(field, 'env', key);
    }
    return out;
  }

  #headers(fields: Fields): Record<string, Credential> | undefined {
    if (fields.length === 0) return undefined;
    const out: Record<string, Credential> = {};
    for (const [header, field] of fields) {
      const literal = plainText(field.parts);
      if (literal !== undefined && literal !== '' && (field.secret === true || isSecretHeader(header) || looksSecretValue(splitScheme(literal)[1]))) {
        const [scheme, secret] = splitScheme(literal);
        const name = envName(`${this.#name}_${/^authorization$/i.test(header) ? 'token' : header}`);
        const ref = this.#secret(name, secret, field, 'header');
        out[header] = `${scheme}${String(ref)}`;
        continue;
      }
      out[header] = this.#text(field, 'header');
    }
    return out;
  }

  /**
   * A plain-text secret: never written out. `env` policy and `auto` make it
   * an environment variable (named after the key, or after the server when
   * another server used the name for a different value); `user` makes each
   * user supply it, except in a URL or arguments (`shared`), which are the
   * same for every user.
   */
  #secret(key: string, value: string, field: Field, place: 'env' | 'header' | 'shared'): Credential {
    if (this.#policy === 'user' && place === 'env') {
      this.#perUserEnv = true;
      return { fromUser: true, sensitive: true };
    }
    if (this.#policy === 'user' && place === 'header') {
      this.#credentials[key] = { sensitive: true };
      return `\${user.credentials.${key}}`;
    }
    let name = key;
    const seen = this.#secretValues.get(name);
    if (seen !== undefined && seen !== value) name = envName(`${this.#name}_${key}`);
    this.#secretValues.set(name, value);
    const why = this.#policy === 'user' ? ", since a server's URL and arguments are the same for every user" : '';
    this.#report('warning', field.path, 'import_secret_moved', `secret not copied: berth reads it from \${env:${name}}${why}`, `set ${name} in berth's environment`);
    return `\${env:${name}}`;
  }

  #url(field: Field): string {
    const text = this.#text(field, 'url');
    if (plainText(field.parts) === undefined) return text;
    // An API key in the query string (`?api_key=…`) goes the way of other secrets.
    return text.replace(/([?&])([^=&#]+)=([^&#]+)/g, (match, sep: string, param: string, value: string) => {
      if (!(isSecretName(param) || looksSecretValue(decodeURIComponent(value)))) return match;
      return `${sep}${param}=${String(this.#secret(envName(`${this.#name}_${param}`), value, field, 'shared'))}`;
    });
  }

  /** An argument; a secret one (by its value, or the flag before it) becomes an environment variable. */
  #arg(field: Field, previous: Field | undefined): string {
    const literal = plainText(field.parts);
    if (literal !== undefined && literal !== '') {
      const inline = /^(--?[A-Za-z0-9_-]+)=(.+)$/.exec(literal);
      const flag = inline?.[1] ?? plainText(previous?.parts ?? []) ?? '';
      const value = inline?.[2] ?? literal;
      const secretFlag = flag.startsWith('-') && isSecretName(flag.replace(/^-+/, ''));
      if (field.secret === true || looksSecretValue(value) || secretFlag) {
        const name = envName(`${this.#name}_${secretFlag ? flag.replace(/^-+/, '') : 'secret'}`);
        const ref = String(this.#secret(name, value, field, 'shared'));
        return inline === null ? ref : `${inline[1]}=${ref}`;
      }
    }
    return this.#text(field, 'args');
  }

  /** A value as berth text: literal `${` escaped, references in berth's syntax, prompts per place. */
  #text(field: Field, place: 'command' | 'args' | 'cwd' | 'env' | 'url' | 'header', key?: string): string {
    return field.parts.map((part) => (typeof part === 'string' ? part.replaceAll('${', () => '$${') : this.#reference(part, field, place, key))).join('');
  }

  #reference(ref: Reference, field: Field, place: string, key: string | undefined): string {
    switch (ref.kind) {
      case 'env':
        if (ref.fallback?.includes('}') === true) return this.#fail(field.path, 'import_variable_unsupported', `the default of \${${ref.name}} holds \`}\`, which berth's \${env:${ref.name}:-…} cannot`);
        return ref.fallback === undefined ? `\${env:${ref.name}}` : `\${env:${ref.name}:-${ref.fallback}}`;
      case 'file':
        return `\${file:${ref.path}}`;
      case 'unsupported':
        return this.#fail(field.path, 'import_variable_unsupported', `${ref.text} cannot be translated: ${ref.why}`, 'replace it with a fixed value or an environment variable, then import again');
      case 'prompt':
        return this.#prompt(ref, field, place, key);
    }
  }

  /** What a client asks its user for: a per-user credential in a header, else an environment variable. */
  #prompt(ref: Prompt, field: Field, place: string, key: string | undefined): string {
    const name = envName(key ?? ref.id);
    if (place === 'header' && this.#policy !== 'env') {
      this.#credentials[name] = { ...(ref.description === undefined ? {} : { description: ref.description }), sensitive: ref.secret, ...(ref.required ? {} : { required: false }) };
      return `\${user.credentials.${name}}`;
    }
    const why = this.#policy === 'env' ? 'as --secrets env asks' : `since a server's ${place === 'env' ? 'environment value with other text' : place} is the same for every user`;
    this.#report('warning', field.path, 'import_prompt_to_env', `the client asks its user for ${JSON.stringify(ref.id)}; berth reads it from \${env:${name}}, ${why}`, `set ${name} in berth's environment`);
    return ref.fallback === undefined ? `\${env:${name}}` : `\${env:${name}:-${ref.fallback.replaceAll('}', '')}}`;
  }

  #fail(path: Field['path'], code: string, message: string, hint?: string): string {
    this.failed ??= message;
    this.#report('error', path, code, message, hint);
    return '';
  }
}

function perUser(ref: Prompt): Credential {
  return { fromUser: true, ...(ref.secret ? { sensitive: true } : {}), ...(ref.description === undefined ? {} : { description: ref.description }), ...(ref.required ? {} : { required: false }) };
}

/** `npx -y pkg args` and `uvx pkg args`: berth's npx and uvx runtimes; anything with other options stays a command. */
function packageRuntime(command: string, args: readonly string[]): { runtime: 'npx' | 'uvx'; package: string; args: string[] } | undefined {
  const tool = /(^|[/\\])(npx|uvx)(\.cmd|\.exe)?$/.exec(command)?.[2];
  if (tool !== 'npx' && tool !== 'uvx') return undefined;
  let i = 0;
  if (tool === 'npx') while (args[i] === '-y' || args[i] === '--yes') i++;
  const pkg = args[i];
  if (pkg === undefined || pkg.startsWith('-') || pkg.includes('${')) return undefined;
  return { runtime: tool, package: pkg, args: args.slice(i + 1) };
}
