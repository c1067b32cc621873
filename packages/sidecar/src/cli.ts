#!/usr/bin/env node
console.log('tripswitch CLI: coming soon');
