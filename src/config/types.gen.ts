/* Generated from schemas/berth.schema.json by scripts/gen-types.ts. Do not edit. */

/**
 * Where hosted servers run: local child processes (default), Docker containers, or Kubernetes pods.
 */
export type Backend = {
  /**
   * The backend kind.
   */
  type: 'local' | 'docker' | 'kubernetes';
  /**
   * docker: path of the Docker daemon socket.
   */
  socket?: string;
  /**
   * docker: network the server containers join (not with networkMode host). berth creates it when missing, internal unless `pods.egress` is declared; an existing one must match. Default: berth-<owner>, one network per berth.
   */
  network?: string;
  /**
   * docker: host address container ports are published on. Keep it on loopback unless something else must reach the containers.
   */
  publishHost?: string;
  /**
   * docker: this berth's id, written on every container and network it creates. A berth lists, adopts and removes only its own owner's objects, so two berths sharing a daemon need different owners.
   */
  owner?: string;
  /**
   * docker: how berth reaches its containers. `published`: berth runs on the host and reaches ports published on publishHost (host ports chosen by the daemon). `shared`: berth runs in a container on `network` and reaches containers by name. `host`: containers share the host network and listen on a loopback port berth assigns in PORT.
   */
  networkMode?: 'published' | 'shared' | 'host';
  /**
   * docker: when to pull images: `always` before creating a container, `if-not-present`, or `never` (images must be built or loaded on the daemon).
   */
  pull?: 'always' | 'if-not-present' | 'never';
  /**
   * docker: image that runs npx, uvx and command servers behind `berth bridge`: berth's own image, or one built from it with the runtimes those servers need.
   */
  runtimeImage?: string;
  /**
   * docker: run containers with a read-only root filesystem; `tmpfs` paths stay writable. Turn off for servers that write elsewhere.
   */
  readOnlyRootFilesystem?: boolean;
  /**
   * docker: writable in-memory mounts in every container (64 MiB each).
   */
  tmpfs?: string[];
  /**
   * kubernetes: namespace for every object berth creates.
   */
  namespace?: string;
  /**
   * kubernetes: kubeconfig context to use. In-cluster configuration when berth runs in a pod and no context is set.
   */
  context?: string;
  /**
   * kubernetes: path of the kubeconfig file. Defaults to $KUBECONFIG, then ~/.kube/config.
   */
  kubeconfig?: string;
  /**
   * kubernetes: service account the server pods run as.
   */
  serviceAccount?: string;
  /**
   * kubernetes: create a NetworkPolicy per server that admits traffic only from berth.
   */
  networkPolicy?: boolean;
  /**
   * kubernetes: berth's own image. npx, uvx and command servers run in it behind `berth bridge`, which serves their stdio as streamable HTTP.
   */
  bridgeImage?: string;
  /**
   * kubernetes: labels of berth's own pods; server pods admit traffic only from pods with these labels.
   */
  berthPodLabels?: {
    [k: string]: string | undefined;
  };
  maxResources?: Resources;
  pods?: PodSettings;
};
/**
 * One way for clients to authenticate.
 */
export type AuthProvider = {
  /**
   * none: anonymous clients (loopback only). apiKey: static keys. jwt: OIDC/JWT bearer tokens. header: a trusted identity header set by an auth proxy in front of berth.
   */
  type: 'none' | 'apiKey' | 'jwt' | 'header';
  /**
   * jwt: let `issuer`, `jwksUri` or the introspection endpoint point at a link-local or cloud metadata address, which berth refuses by default.
   */
  allowLinkLocal?: boolean;
  /**
   * What stands before a user's name in the key berth keeps their instances, stored credentials, sessions and limits under. By default each provider has its own namespace (`apiKey:alice`, `jwt:<issuer>#alice`, `header:<userHeader>:alice`), so equal names from different providers are different people. Give providers the same prefix to make their equal names one person on purpose; `""` keeps the bare name, the key berth used before identities had a provider (credentials saved then are found again).
   */
  usernamePrefix?: string;
  /**
   * apiKey: the accepted keys. Store only the SHA-256 of each key (hex), or load the key from a secret.
   *
   * @minItems 1
   */
  keys?: ApiKey[];
  /**
   * jwt: the token issuer (iss). Its OpenID configuration gives the JWKS unless jwksUri is set.
   */
  issuer?: string;
  /**
   * jwt: an audience (aud) accepted besides the route's own resource URL (listen.publicUrl + /mcp/<server>). Only for issuers that cannot mint per-resource audiences: a token for this audience is then good for every route.
   */
  audience?: string;
  /**
   * jwt: where to fetch the signing keys, when not from issuer discovery.
   */
  jwksUri?: string;
  /**
   * jwt: claim naming the user.
   */
  userClaim?: string;
  /**
   * jwt: claim listing the user's groups.
   */
  groupsClaim?: string;
  /**
   * jwt: scopes every token must carry; otherwise 403 insufficient_scope.
   */
  requiredScopes?: string[];
  /**
   * jwt: signature algorithms accepted; tokens signed otherwise (or unsigned) are refused.
   *
   * @minItems 1
   */
  algorithms?: ('RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA')[];
  /**
   * jwt: tolerance for exp and nbf, for clocks that drift apart.
   */
  clockSkewSeconds?: number;
  /**
   * jwt: check opaque (non-JWT) tokens at the issuer's RFC 7662 introspection endpoint, as this client.
   */
  introspection?: {
    /**
     * The introspection endpoint, when not from issuer discovery.
     */
    endpoint?: string;
    /**
     * Client id berth authenticates as.
     */
    clientId: string;
    /**
     * Client secret; use ${env:NAME} or ${file:path}.
     */
    clientSecret: string;
    /**
     * Accept an introspected token whose answer names no audience (aud). Such a token says nothing about which resource it is for, so it would be good for every route: only for issuers that cannot name one.
     */
    allowMissingAudience?: boolean;
  };
  /**
   * jwt: let people sign in to berth's /connect pages in a browser through this issuer's authorization endpoint (authorization code + PKCE S256), as this client. Register `<publicUrl>/signin/callback` (or `http://<host>:<port>/signin/callback` without a publicUrl) as the client's redirect URI. The token it gets is checked by this provider's own rules, so the browser is the very user an MCP client with that token is.
   */
  browserSignIn?: {
    /**
     * The client id registered at the issuer for berth's sign-in.
     */
    clientId: string;
    /**
     * The client secret, sent with client_secret_basic; a public client has none (PKCE protects it). Use ${env:NAME} or ${file:path}.
     */
    clientSecret?: string;
    /**
     * Scopes asked for. With `openid` the issuer's ID token is checked too (signature, audience, nonce). Must hold every one of the provider's `requiredScopes`. Default: `openid` and the provider's `requiredScopes`.
     */
    scopes?: string[];
    /**
     * Let the issuer and the endpoints its metadata names be plain http or loopback and private addresses, which the SSRF guard refuses by default (as `oauth.allowPrivateNetworks` does for upstreams).
     */
    allowPrivateNetworks?: boolean;
  };
  /**
   * header: request header carrying the user name.
   */
  userHeader?: string;
  /**
   * header: request header carrying comma-separated groups.
   */
  groupsHeader?: string;
  /**
   * header: client addresses (CIDR) allowed to set the identity headers. Requests from elsewhere are not trusted.
   *
   * @minItems 1
   */
  trustedProxies?: string[];
};
export type ApiKey = {
  /**
   * The user this key authenticates.
   */
  user: string;
  /**
   * Groups of the user, for access rules.
   */
  groups?: string[];
  /**
   * Hex SHA-256 of the key (`printf %s KEY | sha256sum`).
   */
  sha256?: string;
  /**
   * The key itself; only from a secret, e.g. ${env:ALICE_KEY}.
   */
  key?: string;
} & ApiKey1;
export type ApiKey1 = {
  [k: string]: unknown | undefined;
};
/**
 * One MCP server.
 */
export type Server = {
  /**
   * single-user: an own instance per user, started on first use. multi-user: one shared instance. remote: an external URL, proxied. composite: several servers as one.
   */
  type: 'single-user' | 'multi-user' | 'remote' | 'composite';
  /**
   * What this server is for; shown in status.
   */
  description?: string;
  /**
   * How a hosted server runs: npx (npm package), uvx (PyPI package), command (any stdio command), container (an OCI image serving HTTP).
   */
  runtime?: 'npx' | 'uvx' | 'command' | 'container';
  /**
   * npx/uvx: the package to run, optionally with a version (`name@1.2.3` for npm, `name==1.2.3` for PyPI).
   */
  package?: string;
  /**
   * npx/uvx: version pin, when not written into `package`.
   */
  version?: string;
  /**
   * command: the executable to run.
   */
  command?: string;
  /**
   * Arguments after the package or command (for container: the container command's arguments).
   */
  args?: string[];
  /**
   * command: working directory, relative to the config file.
   */
  cwd?: string;
  /**
   * container: the OCI image, ideally pinned by tag or digest.
   */
  image?: string;
  /**
   * container: the port the server listens on inside the container.
   */
  port?: number;
  /**
   * container/remote, and command with `transport`: the MCP endpoint path.
   */
  path?: string;
  /**
   * container/remote: the upstream's HTTP transport. command: set it when the command serves MCP over HTTP instead of stdio; berth passes a free loopback port in the PORT environment variable.
   */
  transport?: 'streamable-http' | 'sse';
  /**
   * container on docker: also publish the server on this host port (on backend.publishHost), e.g. for debugging.
   */
  publishPort?: number;
  /**
   * remote: the upstream MCP URL.
   */
  url?: string;
  /**
   * remote: let `url` point at a link-local or cloud metadata address (169.254.0.0/16, fe80::/10, fd00:ec2::254, metadata.google.internal), which berth refuses by default: they hand out the host's cloud credentials.
   */
  allowLinkLocal?: boolean;
  /**
   * Environment of the server process. A value is a string, or an object describing a credential.
   */
  env?: {
    [k: string]: Credential | undefined;
  };
  /**
   * HTTP headers added to every upstream request (remote servers, and hosted servers that speak HTTP: container, or command with `transport`). A value may use the caller's own credentials, `${user.credentials.NAME}` for a NAME declared in `credentials`, filled in per request.
   */
  headers?: {
    [k: string]: Credential | undefined;
  };
  /**
   * Values each user supplies for this server (at /connect/<server> or PUT /api/credentials/<server>), used in `headers` as `${user.credentials.NAME}`.
   */
  credentials?: {
    [k: string]: UserCredential | undefined;
  };
  oauth?: Oauth;
  resources?: Resources1;
  kubernetes?: PodSettings;
  autoscale?: Autoscale;
  /**
   * single-user: at most this many users' instances at once. The next user gets a clear error (HTTP 429) until an instance stops after its idle timeout.
   */
  maxInstances?: number;
  /**
   * multi-user: how many instances share the load.
   */
  replicas?: number;
  /**
   * single-user: stop a user's instance after this long without requests (`30s`, `15m`, `1h`).
   */
  idleTimeout?: string;
  /**
   * single-user/multi-user: how long an instance may take to start and answer `initialize` before berth reports it failed (`30s`, `2m`). npx and uvx may download the package first.
   */
  startupTimeout?: string;
  /**
   * single-user/multi-user: how long berth waits for the answer to one forwarded request before it answers the client with an error (JSON-RPC -32004). Progress notifications from the server restart the clock. Changing it restarts nothing.
   */
  requestTimeout?: string;
  access?: Access;
  /**
   * composite: the servers this one is made of.
   *
   * @minItems 1
   */
  components?: Component[];
};
/**
 * A plain value, or a credential each user supplies.
 */
export type Credential =
  | string
  | number
  | boolean
  | {
      /**
       * A fixed value (same as writing the value directly).
       */
      value?: string;
      /**
       * Each user supplies this value for themselves.
       */
      fromUser?: boolean;
      /**
       * A secret: never logged, encrypted at rest, masked in status.
       */
      sensitive?: boolean;
      /**
       * What the user should enter; shown when asking for it.
       */
      description?: string;
      /**
       * The server cannot start for a user without it.
       */
      required?: boolean;
    };

/**
 * One file declares every MCP server berth hosts or proxies, how clients authenticate, and where the servers run.
 */
export interface BerthConfiguration {
  /**
   * Version of this file format. Only 1 exists.
   */
  version: 1;
  listen?: Listen;
  backend?: Backend;
  state?: State;
  limits?: Limits;
  telemetry?: Telemetry;
  /**
   * Downstream authentication: how clients of berth prove who they are. Providers are tried in order; the first that recognises the request decides. Without this key berth accepts anonymous clients on loopback only.
   */
  auth?: AuthProvider[];
  /**
   * The MCP servers, keyed by name. Each is served at /mcp/<name>.
   */
  servers: {
    [k: string]: Server | undefined;
  };
}
/**
 * Where the proxy listens and how it is reached from outside.
 */
export interface Listen {
  /**
   * Address to bind. Defaults to 127.0.0.1; use 0.0.0.0 in a container.
   */
  host?: string;
  /**
   * TCP port to bind. 0 picks a free port.
   */
  port?: number;
  /**
   * The URL clients use to reach berth, when it differs from host:port (behind a load balancer or ingress). Used in OAuth metadata and redirect URIs.
   */
  publicUrl?: string;
  /**
   * Browser origins allowed to call berth (the Origin header). Requests with any other Origin get 403. Loopback origins are always allowed when berth listens on loopback.
   */
  allowedOrigins?: string[];
  /**
   * Largest request body accepted, in bytes; larger requests get 413.
   */
  maxBodyBytes?: number;
  /**
   * Largest answer berth takes from an HTTP server (hosted or remote), in bytes: a JSON answer, or one event of an SSE stream. A larger one fails its own request with an error; the connection and other requests go on. A local stdio server's line has the same limit (one behind `berth bridge`, in a container or pod, also the bridge's own 10 MiB).
   */
  maxAnswerBytes?: number;
  /**
   * With `auth` configured, only members of this group may read /status and /metrics.
   */
  adminGroup?: string;
  /**
   * Most client sessions open at once, over all clients; past it the least recently used session is closed (its client gets 404 and starts a new one).
   */
  maxSessions?: number;
  /**
   * Most sessions one client (one identity: a user, or all anonymous loopback clients together) may hold; its next session closes its own least recently used one not in use (no open stream), never another client's.
   */
  maxSessionsPerClient?: number;
}
/**
 * kubernetes: the most any server may ask for in `resources`; a config asking for more is rejected at validate time, before any API write.
 */
export interface Resources {
  /**
   * CPU limit: cores (`1`, `0.5`) or millicores (`500m`).
   */
  cpu?: string | number;
  /**
   * Memory limit: bytes with a suffix (`256Mi`, `1Gi`, `512M`).
   */
  memory?: string;
}
/**
 * kubernetes: how server pods are placed and confined. `backend.pods` sets them for every server; a server's `kubernetes` key replaces them key by key. docker takes only `backend.pods.egress`.
 */
export interface PodSettings {
  /**
   * RuntimeClass of the pods, for a sandboxed runtime (gVisor, Kata).
   */
  runtimeClassName?: string;
  /**
   * Node labels the pods must run on.
   */
  nodeSelector?: {
    [k: string]: string | undefined;
  };
  /**
   * Taints the pods tolerate.
   */
  tolerations?: Toleration[];
  /**
   * Names of Secrets in the namespace holding registry credentials for the images.
   */
  imagePullSecrets?: string[];
  /**
   * Mount the container's root filesystem read-only; each of `writablePaths` gets an emptyDir volume.
   */
  readOnlyRootFilesystem?: boolean;
  /**
   * Absolute paths that get a writable emptyDir volume. npx, uvx and command servers run with HOME=/tmp.
   */
  writablePaths?: string[];
  /**
   * CIDRs the pods may connect to besides cluster DNS; everything else is denied. Private, shared (100.64.0.0/10), link-local (cloud metadata), loopback, IPv6 ULA (fc00::/7) and other reserved ranges are cut out of every CIDR unless declared themselves. docker (`backend.pods.egress` only): none keeps every server container on an internal network; `[0.0.0.0/0, "::/0"]` lets them reach everywhere; Docker enforces nothing narrower.
   */
  egress?: string[];
}
/**
 * A Kubernetes toleration.
 */
export interface Toleration {
  /**
   * The taint key; empty with operator Exists tolerates every taint.
   */
  key?: string;
  /**
   * Equal: the taint's value must be `value`. Exists: any value.
   */
  operator?: 'Exists' | 'Equal';
  /**
   * The taint value, with operator Equal.
   */
  value?: string;
  /**
   * The taint effect tolerated; empty: all.
   */
  effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  /**
   * NoExecute: how long the pod stays after the taint appears.
   */
  tolerationSeconds?: number;
}
/**
 * berth's own state file: upstream OAuth tokens and per-user credentials, encrypted at rest.
 */
export interface State {
  /**
   * Path of the state file, relative to the config file.
   */
  path?: string;
  /**
   * Encryption key for secrets in the state file: at least 32 characters. Use ${env:NAME} or ${file:path}; never commit it. Without a key berth stores no secrets.
   */
  key?: string;
  /**
   * Several encryption keys, for rotation: new secrets are sealed under the first, and any of them opens a stored one. Put a new key first, restart, run `berth state rotate-key`, then drop the old one. Use instead of `key`.
   *
   * @minItems 1
   */
  keys?: string[];
}
/**
 * Caps that keep one user or one server from taking the host.
 */
export interface Limits {
  /**
   * At most this many single-user instances per user, over all servers. A user at the cap gets a clear error (HTTP 429) until one of their instances stops after its idle timeout.
   */
  instancesPerUser?: number;
}
/**
 * OpenTelemetry traces and metrics by the MCP semantic conventions, exported over OTLP. Where they go (endpoint, protocol, headers), the service name and resource attributes come from the standard OTEL_* environment variables; this block says what the file should. Read at start-up: a change applies on restart. See docs/telemetry.md.
 */
export interface Telemetry {
  /**
   * Whether berth exports telemetry. Without this block it is on when an OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_/_METRICS_ENDPOINT) variable is set; OTEL_SDK_DISABLED=true always turns it off.
   */
  enabled?: boolean;
  /**
   * The share of new traces recorded, 0 to 1. Parent-based: a caller's sampled trace is followed. OTEL_TRACES_SAMPLER, when set, wins. Default 1.
   */
  sampling?: number;
  /**
   * Servers whose tool-call arguments and results are recorded on spans (gen_ai.tool.call.arguments, gen_ai.tool.call.result). They may hold personal data; no other server's ever are.
   */
  capture?: string[];
  /**
   * Key of the HMAC that turns user names into the pseudonyms spans carry (berth.user.hash): the same key gives the same pseudonym across restarts and replicas. Default: a random key per process. Use ${env:…} or ${file:…}.
   */
  userHashKey?: string;
}
/**
 * A value each user supplies for themselves.
 */
export interface UserCredential {
  /**
   * What the user should enter; shown when asking for it.
   */
  description?: string;
  /**
   * A secret: never logged, encrypted at rest, a password field on /connect.
   */
  sensitive?: boolean;
  /**
   * Callers without it get an error naming /connect/<server>. An optional one left empty drops the headers that use it.
   */
  required?: boolean;
}
/**
 * berth is the OAuth 2.1 client towards this upstream: it discovers the authorization server, obtains a token per user (or one shared), refreshes it and injects it. Discovery is the default; static client settings override it.
 */
export interface Oauth {
  /**
   * Scopes to request when the upstream's 401 challenge names none (the challenge's scope wins); without them berth asks for the resource metadata's `scopes_supported`, else none.
   */
  scopes?: string[];
  /**
   * Issuer URL of the authorization server, when it cannot be discovered from the upstream (RFC 9728), or to pick one of several it names.
   */
  authorizationServer?: string;
  /**
   * A pre-registered client ID. Without it berth uses a client ID metadata document (when the authorization server supports them) or dynamic client registration, once per authorization server.
   */
  clientId?: string;
  /**
   * Secret of a confidential pre-registered client; use ${env:…} or ${file:…}.
   */
  clientSecret?: string;
  /**
   * How berth authenticates at the token endpoint with a pre-registered client. Default: client_secret_basic with a clientSecret, none without. private_key_jwt signs a client assertion (RFC 7523) with `privateKey`.
   */
  tokenEndpointAuthMethod?: 'none' | 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt';
  /**
   * The private key a pre-registered client signs its client assertions with, for tokenEndpointAuthMethod private_key_jwt. The authorization server holds the public half (the client's jwks or jwks_uri).
   */
  privateKey?: {
    /**
     * The private key as PEM (PKCS#8, PKCS#1 or SEC1) or as a JWK (JSON); use ${file:…} or ${env:…}.
     */
    key: string;
    /**
     * The key ID put in the assertion's header, as the authorization server knows it. Default: the JWK's own kid, else none.
     */
    kid?: string;
    /**
     * The signing algorithm. Default: the JWK's own alg, else RS256 for RSA, PS256 for RSA-PSS, ES256/ES384/ES512 by the EC curve, EdDSA for Ed25519.
     */
    alg?: string;
  };
  /**
   * URL of a Client ID Metadata Document published elsewhere (its redirect_uris must hold <publicUrl>/oauth/callback), for when berth's own public URL is not https or not reachable by the authorization server.
   */
  clientMetadataUrl?: string;
  /**
   * Lets this server's discovery, registration, token and revocation requests reach loopback, private and link-local addresses, which berth refuses by default (SSRF guard). Only for authorization servers you run on your own network.
   */
  allowPrivateNetworks?: boolean;
  /**
   * Each user authorizes separately (default). false: one token, obtained once by a member of the admin group (`listen.adminGroup`), used for everyone.
   */
  perUser?: boolean;
}
/**
 * Resource limits per instance (Kubernetes quantity syntax). Enforced on docker and kubernetes.
 */
export interface Resources1 {
  /**
   * CPU limit: cores (`1`, `0.5`) or millicores (`500m`).
   */
  cpu?: string | number;
  /**
   * Memory limit: bytes with a suffix (`256Mi`, `1Gi`, `512M`).
   */
  memory?: string;
}
/**
 * multi-user on kubernetes: a HorizontalPodAutoscaler scales the server between `minReplicas` (default `replicas`) and `maxReplicas` on CPU use. Needs `resources.cpu`.
 */
export interface Autoscale {
  /**
   * Fewest replicas; defaults to `replicas`.
   */
  minReplicas?: number;
  /**
   * Most replicas.
   */
  maxReplicas: number;
  /**
   * Average CPU use to scale at, in percent of the request.
   */
  cpuUtilization?: number;
}
/**
 * Who may use this server (or composite component). Without it every authenticated user may; once it is given, everyone else is refused. A user matches when named in `users` or a member of one of `groups` (when either is given), and holds every one of `scopes` (when given).
 */
export interface Access {
  /**
   * User names allowed.
   */
  users?: string[];
  /**
   * Groups allowed.
   */
  groups?: string[];
  /**
   * OAuth scopes the caller's token must all carry; a token without them gets 403 insufficient_scope naming them.
   */
  scopes?: string[];
}
/**
 * One server inside a composite.
 */
export interface Component {
  access?: Access1;
  /**
   * Name of the server (or composite) to include.
   */
  server: string;
  /**
   * How long the composite waits for this component to connect or list its tools before it leaves the component's tools out (it keeps trying in the background and tells clients when they are back).
   */
  timeout?: string;
  /**
   * Prepended to every tool name of this component, to keep names apart.
   */
  prefix?: string;
  /**
   * Which tools to expose and how.
   */
  tools?: {
    /**
     * Only these tools (original names). Without it, all tools.
     */
    include?: string[];
    /**
     * Never these tools (original names).
     */
    exclude?: string[];
    /**
     * New names for tools: original → new (the prefix is added after renaming).
     */
    rename?: {
      [k: string]: string | undefined;
    };
    /**
     * New descriptions for tools: original name → description.
     */
    descriptions?: {
      [k: string]: string | undefined;
    };
  };
}
/**
 * Who may use this server (or composite component). Without it every authenticated user may; once it is given, everyone else is refused. A user matches when named in `users` or a member of one of `groups` (when either is given), and holds every one of `scopes` (when given).
 */
export interface Access1 {
  /**
   * User names allowed.
   */
  users?: string[];
  /**
   * Groups allowed.
   */
  groups?: string[];
  /**
   * OAuth scopes the caller's token must all carry; a token without them gets 403 insufficient_scope naming them.
   */
  scopes?: string[];
}
