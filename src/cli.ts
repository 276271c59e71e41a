import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { configPath, optionalConfigPath } from './cli/config-path.ts';
import { exitCode } from './cli/output.ts';
import { isBerthError } from './errors.ts';

const VERSION = '0.1.0';
/** `berth import --format` values; the table itself (src/clients/formats.ts) loads only when a command needs it. */
const CLIENT_FORMATS = ['registry', 'vscode', 'codex', 'claude-desktop', 'claude-code', 'cursor', 'windsurf', 'gemini'];

function program(setExit: (code: number) => void): Command {
  const cli = new Command('berth')
    .description('Host MCP servers from one declarative YAML file behind one multiplexing proxy.')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const fileArg = ['[file]', 'config file (default: $BERTH_CONFIG, then ./berth.yaml)'] as const;

  cli
    .command('validate')
    .description('check a config file and print every problem with its position')
    .argument(...fileArg)
    .option('--json', 'machine-readable output for editors and CI')
    // Each command loads its own module when it runs: `berth validate` does not start the proxy's.
    .action(async (file: string | undefined, opts: { json?: boolean }) => {
      const { runValidate } = await import('./cli/validate.ts');
      setExit(runValidate(configPath(file), opts));
    });

  cli
    .command('plan')
    .description('show what applying a config would change; exit 0 when nothing, 2 when something')
    .argument(...fileArg)
    .option('--from <old>', 'plan from this older config file instead of from nothing')
    .option('--running [url]', 'plan against the running berth (default: the one listen settings name)')
    .option('--json', 'machine-readable output')
    .action(async (file: string | undefined, opts: { from?: string; running?: string | true; json?: boolean }) => {
      if (opts.from !== undefined && opts.running !== undefined) throw new InvalidArgumentError('use either --from or --running');
      const { runPlan } = await import('./cli/plan.ts');
      setExit(await runPlan(configPath(file), opts));
    });

  cli
    .command('render')
    .description('print the Kubernetes objects of a config as YAML, for a GitOps tool to apply')
    .argument(...fileArg)
    .option('--owner <name>', 'the berth instance owning the objects (label and name prefix)', 'berth')
    .addOption(new Option('--secrets <mode>', 'Secrets hold credentials: leave them out, or include them').choices(['omit', 'include']).default('omit'))
    .action(async (file: string | undefined, opts: { owner: string; secrets: 'omit' | 'include' }) => {
      const { runRender } = await import('./cli/render.ts');
      setExit(runRender(configPath(file), opts));
    });

  cli
    .command('serve')
    .description('run the servers a config declares and serve them at /mcp/<server>; reloads on change and SIGHUP')
    .argument(...fileArg)
    .option('--log-format <format>', 'json (default) or pretty', 'json')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .option('--port <port>', 'listen on this port instead of listen.port (0: any free port)', parsePort)
    .action(async (file: string | undefined, opts: { logFormat: string; logLevel: string; port?: number }) => {
      if (opts.logFormat !== 'json' && opts.logFormat !== 'pretty') throw new InvalidArgumentError('--log-format is json or pretty');
      const { runServe } = await import('./cli/serve.ts');
      setExit(await runServe(configPath(file), { logFormat: opts.logFormat, logLevel: opts.logLevel, ...(opts.port === undefined ? {} : { port: opts.port }) }));
    });

  cli
    .command('status')
    .description("print a running berth's servers, instances and last reload")
    .argument(...fileArg)
    .option('--url <url>', 'berth to ask (default: from the config file\'s listen settings; without a config, http://127.0.0.1:8080)')
    .option('--json', 'print the raw status document')
    .action(async (file: string | undefined, opts: { url?: string; json?: boolean }) => {
      const { runStatus } = await import('./cli/status.ts');
      setExit(await runStatus(opts.url === undefined ? optionalConfigPath(file) : undefined, opts));
    });

  cli
    .command('import')
    .description("turn an MCP client's config (Claude, VS Code, Cursor, Windsurf, Codex, Gemini CLI, a registry server.json) into berth servers")
    .argument('<file>', 'the client config to read')
    .addOption(new Option('--format <format>', 'the file\'s format, when its name and shape do not tell').choices(CLIENT_FORMATS))
    .option('--into <berth.yaml>', 'add the servers to this berth.yaml instead of printing them')
    .addOption(new Option('--secrets <where>', 'secrets become: auto (prompts per user, others ${env:…}), env, or user').choices(['auto', 'env', 'user']).default('auto'))
    .action(async (file: string, opts: { format?: string; into?: string; secrets: 'auto' | 'env' | 'user' }) => {
      const { runImport } = await import('./cli/import.ts');
      setExit(runImport(file, opts));
    });

  cli
    .command('connect')
    .description("print what to paste into an MCP client to reach berth's /mcp/<server> routes, in that client's format")
    .addArgument(new Argument('<client>', 'the client').choices(CLIENT_FORMATS.filter((f) => f !== 'registry')))
    .argument('[servers...]', 'the servers to reach (default: all of them)')
    .option('--config <file>', 'the berth config (default: $BERTH_CONFIG, then ./berth.yaml)')
    .option('--url <url>', "berth's URL as clients reach it (default: listen.publicUrl, then the listen address)")
    .action(async (client: string, servers: string[], opts: { config?: string; url?: string }) => {
      const { runConnect } = await import('./cli/connect.ts');
      setExit(runConnect(client, servers, { config: configPath(opts.config), ...(opts.url === undefined ? {} : { url: opts.url }) }));
    });

  cli
    .command('key')
    .description('API keys for the apiKey auth provider')
    .command('new')
    .description('print a new API key and the config line (with only its SHA-256) that accepts it')
    .requiredOption('--user <name>', 'the user the key authenticates')
    .option('--groups <list>', 'comma-separated groups of the user, for access rules', parseList)
    .action(async (opts: { user: string; groups?: string[] }) => {
      // Loaded on use: the other commands do not pay for it.
      const { runKeyNew } = await import('./cli/key.ts');
      setExit(runKeyNew(opts));
    });

  cli
    .command('bridge')
    .description('serve one stdio MCP server as streamable HTTP at /mcp (what container backends run in front of stdio servers)')
    .argument('<command>', 'the stdio server to run; put `--` before it so its own options reach it')
    .argument('[args...]', 'its arguments')
    .option('--port <port>', 'port to listen on (0: any free port)', parsePort, 8080)
    .option('--host <host>', 'address to listen on; 0.0.0.0 inside a container', '127.0.0.1')
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .action(async (command: string, args: string[], opts: { port: number; host: string; logLevel: string }) => {
      const [{ runBridge }, { createLogger }] = await Promise.all([import('./cli/bridge.ts'), import('./observe/log.ts')]);
      setExit(await runBridge({ command, args, host: opts.host, port: opts.port, logger: createLogger({ level: opts.logLevel }) }));
    });

  cli
    .command('oauth')
    .description("berth as the OAuth client towards upstream servers")
    .command('status')
    .description('where discovery and your own authorization for a server stand (your credentials from BERTH_TOKEN)')
    .argument('<server>', 'the server to ask about')
    .argument(...fileArg)
    .option('--url <url>', 'berth to ask (default: from the config file\'s listen settings; without a config, http://127.0.0.1:8080)')
    .option('--json', 'print the raw answer')
    .action(async (server: string, file: string | undefined, opts: { url?: string; json?: boolean }) => {
      const { runOAuthStatus } = await import('./cli/oauth.ts');
      setExit(await runOAuthStatus(server, opts.url === undefined ? optionalConfigPath(file) : undefined, opts));
    });

  cli
    .command('state')
    .description("manage berth's state file (per-user credentials and tokens, encrypted at rest)")
    .command('rotate-key')
    .description('re-encrypt every secret in the state file under the first key of state.keys')
    .argument(...fileArg)
    .action(async (file: string | undefined) => {
      // Loaded on use: serving never needs it.
      const { runRotateKey } = await import('./cli/state.ts');
      setExit(await runRotateKey(configPath(file)));
    });

  return cli;
}

function parseList(value: string): string[] {
  const items = value.split(',').map((v) => v.trim()).filter((v) => v !== '');
  if (items.length === 0) throw new InvalidArgumentError('give at least one group: --groups eng,ops');
  return items;
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('a port is 0 to 65535');
  return port;
}

/** Runs the CLI; returns the exit code. Never lets a stack trace reach the user for expected errors. */
export async function main(argv: readonly string[]): Promise<number> {
  let code: number = exitCode.ok;
  try {
    await program((c) => (code = c)).parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (isBerthError(err)) {
      process.stderr.write(`berth: ${err.message}\n`);
      return exitCode.failed;
    }
    throw err;
  }
  return code;
}
