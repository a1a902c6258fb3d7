/**
 * The `phonehome` command: dispatches to one module per subcommand (proxy/commands/*). Each
 * subcommand parses its own flags with the shared strict parser and returns an exit status.
 */
import { CommandSpec, formatHelp, parseArgs, ParsedArgs, UsageError } from './commands/args';

export interface Command {
  spec: CommandSpec;
  run(args: ParsedArgs): Promise<number>;
}

/** Loaded lazily so that `phonehome ca` does not pay for the proxy or the dashboard. */
const COMMANDS: Record<string, () => Command> = {
  start: () => require('./commands/start').command,
  ca: () => require('./commands/ca').command,
  analyze: () => require('./commands/analyze').command,
  wireguard: () => require('./commands/wireguard').command,
  import: () => require('./commands/import').command,
  export: () => require('./commands/export').command,
};

function topHelp(): string {
  const lines = ['phonehome — see what a phone tells the internet about its owner', '', 'usage: phonehome <command> [options]', '', 'commands:'];
  for (const name of Object.keys(COMMANDS)) {
    let summary = '';
    try {
      summary = COMMANDS[name]().spec.summary;
    } catch {
      summary = '(not available in this build)';
    }
    lines.push(`  ${name.padEnd(10)} ${summary}`);
  }
  lines.push('', "Run 'phonehome <command> --help' for the options of each command.");
  return lines.join('\n') + '\n';
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(topHelp());
    return name ? 0 : 1;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`phonehome: unknown command '${name}'\n\n${topHelp()}`);
    return 2;
  }
  const command = load();
  try {
    const args = parseArgs(command.spec, rest);
    if (args.help) {
      process.stdout.write(formatHelp(command.spec));
      return 0;
    }
    return await command.run(args);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`phonehome ${name}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
