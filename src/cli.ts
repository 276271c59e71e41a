import { Command, CommanderError } from 'commander';
import { configPath } from './cli/config-path.ts';
import { exitCode } from './cli/output.ts';
import { runPlan } from './cli/plan.ts';
import { runValidate } from './cli/validate.ts';
import { isBerthError } from './errors.ts';

const VERSION = '0.1.0';

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
    .action((file: string | undefined, opts: { json?: boolean }) => setExit(runValidate(configPath(file), opts)));

  cli
    .command('plan')
    .description('show what applying a config would change; exit 0 when nothing, 2 when something')
    .argument(...fileArg)
    .option('--from <old>', 'plan from this older config file instead of from nothing')
    .option('--json', 'machine-readable output')
    .action((file: string | undefined, opts: { from?: string; json?: boolean }) => setExit(runPlan(configPath(file), opts)));

  return cli;
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
