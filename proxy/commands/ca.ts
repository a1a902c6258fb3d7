/** `phonehome ca` — placeholder until its issue lands. */
import type { Command } from '../cli';
import { DATA_DIR_FLAG } from './args';

export const command: Command = {
  spec: { name: 'ca', summary: '(being built)', usage: 'phonehome ca [options]', flags: [DATA_DIR_FLAG] },
  async run() {
    process.stderr.write('phonehome ca: not built yet\n');
    return 1;
  },
};
