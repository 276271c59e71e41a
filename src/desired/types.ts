// The desired state: what berth should be running (units) and serving
// (routes). Units change only by restarting something; routes change in place.
import type { Autoscale, PodSettings } from '../config/types.gen.ts';
import type { ClientKeySettings } from '../config/client-key.ts';
import type { TemplatePart } from '../config/user-template.ts';

/** A server's own pod settings and autoscaling, when it sets any (Kubernetes only). */
export type KubernetesSpec = PodSettings & { readonly autoscale?: Autoscale };

/** A credential each user supplies (env of a per-user instance, or a header). */
export interface UserCredential {
  readonly name: string;
  readonly required: boolean;
  readonly sensitive: boolean;
  readonly description?: string;
  /** Sent in an HTTP header (for /connect: the value must be one a header can carry). */
  readonly header?: boolean;
}

/** Values given in the config plus declarations of what users supply. */
export interface Settings {
  readonly values: Readonly<Record<string, string>>;
  /** Names whose values are secret: shown only as "(changed)". */
  readonly sensitive: readonly string[];
  readonly fromUser: readonly UserCredential[];
}

/** Limits per instance, as written (Kubernetes quantities); enforced by container backends. */
export interface Resources {
  readonly cpu?: string;
  readonly memory?: string;
}

/** How one instance runs. Everything in here needs a restart to change. */
export type UnitSpec =
  | { readonly runtime: 'npx' | 'uvx'; readonly package: string; readonly args: readonly string[]; readonly env: Settings; readonly resources?: Resources; readonly kubernetes?: KubernetesSpec }
  | {
      readonly runtime: 'command';
      readonly command: string;
      readonly args: readonly string[];
      readonly cwd?: string;
      /** Set when the command serves MCP over HTTP on the port berth passes in `PORT`; absent for stdio. */
      readonly transport?: Transport;
      readonly path?: string;
      readonly env: Settings;
      readonly resources?: Resources;
      readonly kubernetes?: KubernetesSpec;
    }
  | {
      readonly runtime: 'container';
      readonly image: string;
      readonly port: number;
      readonly path: string;
      readonly transport: Transport;
      readonly args: readonly string[];
      readonly env: Settings;
      readonly resources?: Resources;
      readonly kubernetes?: KubernetesSpec;
      readonly publishPort?: number;
    };

export type Transport = 'streamable-http' | 'sse';

/** A hosted instance template: one shared instance set, or one instance per user. */
export interface Unit {
  /** Equal to the server name: one unit per hosted server. */
  readonly name: string;
  readonly scope: 'shared' | 'per-user';
  readonly spec: UnitSpec;
  /** Hash of canonical JSON of `spec`, `scope` and the backend; equal hashes mean nothing to restart. */
  readonly specHash: string;
  /** Instances of a shared unit; per-user units have one per active user. */
  readonly replicas: number;
  /** How long an instance may take to become ready; changing it restarts nothing. */
  readonly startupTimeoutMs: number;
}

/** Who may use a server or component; absent means every authenticated caller, present means only those it names. */
export interface Access {
  readonly users?: readonly string[];
  readonly groups?: readonly string[];
  /** OAuth scopes the caller's token must all carry. */
  readonly scopes?: readonly string[];
}

export interface ToolCuration {
  readonly include?: readonly string[];
  readonly exclude?: readonly string[];
  readonly rename: Readonly<Record<string, string>>;
  readonly descriptions: Readonly<Record<string, string>>;
}

export interface ComponentRoute {
  readonly server: string;
  readonly prefix: string;
  /** Bound of connecting to and listing this component. */
  readonly timeoutMs: number;
  readonly access?: Access;
  readonly tools: ToolCuration;
}

export interface OAuthSettings {
  readonly scopes: readonly string[];
  readonly authorizationServer?: string;
  readonly clientId?: string;
  readonly clientSecret?: string;
  readonly tokenEndpointAuthMethod?: 'none' | 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  /** A private_key_jwt client's signing key, as configured (PEM or JWK text). */
  readonly privateKey?: ClientKeySettings;
  readonly clientMetadataUrl?: string;
  readonly perUser: boolean;
  /** Discovery, registration and token requests may reach loopback and private addresses. */
  readonly allowPrivateNetworks: boolean;
}

/**
 * Headers made for each caller from their own credentials (`${user.credentials.NAME}`,
 * and `fromUser` headers), and the `credentials` users supply for them. Absent when none.
 */
export interface UserHeaders {
  readonly userHeaders?: Readonly<Record<string, readonly TemplatePart[]>>;
  readonly credentials?: readonly UserCredential[];
}

interface RouteBase {
  readonly server: string;
  readonly description?: string;
  readonly access?: Access;
}

/** How requests to /mcp/<server> are served. Changes never restart a unit. */
export type Route =
  | (RouteBase & UserHeaders & {
      readonly kind: 'hosted';
      readonly unit: string;
      readonly scope: 'shared' | 'per-user';
      readonly headers: Settings;
      readonly oauth?: OAuthSettings;
      /** How long one forwarded request may wait for its answer. */
      readonly requestTimeoutMs: number;
      /** per-user: stop an instance after this long unused. */
      readonly idleTimeoutMs?: number;
      /** per-user: at most this many users' instances at once. */
      readonly maxInstances?: number;
    })
  | (RouteBase & UserHeaders & {
      readonly kind: 'remote';
      readonly url: string;
      readonly transport: Transport;
      readonly headers: Settings;
      readonly oauth?: OAuthSettings;
    })
  | (RouteBase & { readonly kind: 'composite'; readonly components: readonly ComponentRoute[] });

export interface DesiredState {
  readonly backend: 'local' | 'docker' | 'kubernetes';
  /** Sorted by name. */
  readonly units: readonly Unit[];
  /** Sorted by server. */
  readonly routes: readonly Route[];
}
