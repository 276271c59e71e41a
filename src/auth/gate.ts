import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Route } from '../desired/types.ts';
import type { Logger } from '../observe/log.ts';
import { isLoopbackAddress } from '../net/cidr.ts';
import { sendJson, sendRpcError } from '../http/json-io.ts';
import { isNamed, missingScopes } from './access.ts';
import type { Authenticator } from './chain.ts';
import type { Identity } from '../identity.ts';
import type { ResourceTarget } from './resource.ts';
import { audiencesOf, baseUrl, pageAudiences, bearerChallenge, metadataTarget, metadataUrl, PRM_PREFIX, protectedResourceMetadata, targetOf } from './resource.ts';

export interface GateOptions {
  readonly authenticator: Authenticator;
  readonly publicUrl?: string;
  /** Members of this group may read /status and /metrics once auth is configured. */
  readonly adminGroup?: string;
  readonly logger: Logger;
}

/**
 * berth's identity step: who is calling, and may they use the route they
 * asked for. Refusals are answered here, in the form OAuth clients act on
 * (401 with a challenge pointing at the route's metadata, 403
 * insufficient_scope naming every scope the route needs).
 */
/** The configured route of a server name, from the one route table a request is served from. */
export type RouteOf = (server: string) => Route | undefined;

/** Answers a request that carries no credential at all in its own way (a sign-in page), given the challenge; false leaves the 401 to the gate. */
export type SignInOffer = (challenge: Readonly<Record<string, string>>) => boolean;

export class Gate {
  readonly #o: GateOptions;
  readonly #adminGroup: string;

  constructor(options: GateOptions) {
    this.#o = options;
    this.#adminGroup = options.adminGroup ?? 'admin';
  }

  /** The providers this gate asks; a reload builds the next gate's from them (see Gates). */
  get authenticator(): Authenticator {
    return this.#o.authenticator;
  }

  /** Whether any auth provider is configured (otherwise only this host's clients are served). */
  get configured(): boolean {
    return this.#o.authenticator.configured;
  }

  /**
   * The caller of an MCP request, or undefined when the request was answered
   * here: a refusal, or a protected-resource metadata document.
   */
  async admit(req: IncomingMessage, res: ServerResponse, pathname: string, routeOf: RouteOf, offer?: SignInOffer): Promise<Identity | undefined> {
    const base = baseUrl(this.#o.publicUrl, req);
    if (pathname.startsWith(PRM_PREFIX)) {
      this.#serveMetadata(res, base, metadataTarget(pathname, this.#o.publicUrl), routeOf);
      return undefined;
    }
    const target = targetOf(pathname);
    const route = target === undefined ? undefined : routeOf(target.server);
    const verdict = await this.#o.authenticator.authenticate({ headers: req.headers, remoteAddress: req.socket.remoteAddress, audiences: target === undefined ? pageAudiences(base, pathname) : audiencesOf(base, target) });
    // Built only for a refusal: an admitted request never needs it.
    const challenge = (error?: { error: string; description: string }): Record<string, string> => ({
      'www-authenticate': bearerChallenge({ ...(target === undefined ? {} : { resourceMetadata: metadataUrl(base, target) }), scopes: this.#scopesOf(route), ...(error === undefined ? {} : { error: error.error, description: error.description }) }),
    });
    switch (verdict.kind) {
      case 'pass':
        if (!this.#o.authenticator.configured) {
          sendRpcError(res, 403, -32000, 'Forbidden: anonymous access is allowed from loopback only; configure `auth`');
        } else {
          const headers = challenge();
          if (offer?.(headers) !== true) sendRpcError(res, 401, -32000, 'Unauthorized: send a bearer token or an API key', headers);
        }
        return undefined;
      case 'invalid':
        this.#o.logger.debug({ reason: verdict.reason }, 'credential refused');
        sendRpcError(res, 401, -32000, `Unauthorized: ${verdict.reason}`, challenge({ error: 'invalid_token', description: verdict.reason }));
        return undefined;
      case 'unavailable':
        this.#o.logger.warn({ reason: verdict.reason }, 'credential could not be checked');
        sendRpcError(res, 503, -32000, `Service Unavailable: ${verdict.reason}`, { 'retry-after': '5' });
        return undefined;
      case 'identity':
        break;
    }
    const { identity } = verdict;
    if (route?.access !== undefined && !isNamed(route.access, identity)) {
      sendRpcError(res, 403, -32000, `Forbidden: user ${identity.user} may not use server ${route.server}`);
      return undefined;
    }
    // The provider's own required scopes apply to its tokens only: an API key carries no scopes.
    const all = verdict.requiredScopes === undefined && route?.access?.scopes === undefined ? NO_SCOPES : union(verdict.requiredScopes ?? [], route?.access?.scopes ?? []);
    if (all.length > 0 && missingScopes(all, identity).length > 0) {
      const description = `this server needs the scopes ${all.join(' ')}`;
      sendRpcError(res, 403, -32000, `Forbidden: insufficient scope: ${description}`, challenge({ error: 'insufficient_scope', description }));
      return undefined;
    }
    return identity;
  }

  /**
   * Whether the caller may read /status and /metrics; answers the refusal
   * itself. While auth is not configured, this host's clients may.
   */
  async admitOperator(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    if (!this.#o.authenticator.configured) {
      if (isLoopbackAddress(req.socket.remoteAddress)) return true;
      sendRpcError(res, 403, -32000, 'Forbidden: operations endpoints are served to this host only until `auth` is configured');
      return false;
    }
    const base = baseUrl(this.#o.publicUrl, req);
    const verdict = await this.#o.authenticator.authenticate({ headers: req.headers, remoteAddress: req.socket.remoteAddress, audiences: [base] });
    if (verdict.kind === 'identity' && verdict.identity.groups.includes(this.#adminGroup)) return true;
    if (verdict.kind === 'identity') sendRpcError(res, 403, -32000, `Forbidden: only members of group ${this.#adminGroup} may read this`);
    else if (verdict.kind === 'unavailable') sendRpcError(res, 503, -32000, `Service Unavailable: ${verdict.reason}`, { 'retry-after': '5' });
    else sendRpcError(res, 401, -32000, 'Unauthorized: send the credential of an operator', { 'www-authenticate': bearerChallenge({}) });
    return false;
  }

  #serveMetadata(res: ServerResponse, base: string, target: ResourceTarget | undefined, routeOf: RouteOf): void {
    const route = target === undefined ? undefined : routeOf(target.server);
    if (target === undefined || route === undefined) return sendRpcError(res, 404, -32000, `Not Found: protected resource metadata is at ${PRM_PREFIX}/mcp/<server>`);
    sendJson(res, 200, protectedResourceMetadata(base, target, this.#o.authenticator.issuers, this.#scopesOf(route)));
  }

  /** Scopes a route needs of a token: every jwt provider's, then the route's own. */
  #scopesOf(route: Route | undefined): string[] {
    return union(this.#o.authenticator.requiredScopes, route?.access?.scopes ?? []);
  }
}

const NO_SCOPES: readonly string[] = [];

function union(a: readonly string[], b: readonly string[]): string[] {
  return [...new Set([...a, ...b])];
}
