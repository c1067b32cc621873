#!/usr/bin/env node
/**
 * The `tripswitch-tune` bin.
 * @module
 */
import { main } from './cli-program.js';

await main(process.argv.slice(2));
