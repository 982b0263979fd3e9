#!/usr/bin/env node
// The installed `pxe` command. npm link, npm i -g and npx put a symlink to this file
// on PATH; it runs the CLI whatever the symlink is called (dist/cli.js only runs
// itself when it is the file node was started with).
import { main } from '../dist/cli.js';

const code = await main();
if (code !== 0) process.exit(code);
