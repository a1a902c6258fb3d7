/** `phonehome start` — placeholder until its issue lands. */
import type { Command } from '../cli';
import { DATA_DIR_FLAG } from './args';

export const command: Command = {
  spec: { name: 'start', summary: '(being built)', usage: 'phonehome start [options]', flags: [DATA_DIR_FLAG] },
  async run() {
    process.stderr.write('phonehome start: not built yet\n');
    return 1;
  },
};
