/** `phonehome analyze` — placeholder until its issue lands. */
import type { Command } from '../cli';
import { DATA_DIR_FLAG } from './args';

export const command: Command = {
  spec: { name: 'analyze', summary: '(being built)', usage: 'phonehome analyze [options]', flags: [DATA_DIR_FLAG] },
  async run() {
    process.stderr.write('phonehome analyze: not built yet\n');
    return 1;
  },
};
