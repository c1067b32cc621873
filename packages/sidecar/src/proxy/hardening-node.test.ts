/**
 * hardening.test.ts again, with `http_server: node` (node's http server) on its plain-HTTP listeners,
 * which get `own` by default (the test helpers read TRIPSWITCH_TEST_HTTP_SERVER; see
 * `testHttpServer`): `npm test` covers both servers.
 * @module
 */
process.env.TRIPSWITCH_TEST_HTTP_SERVER = 'node';
await import('./hardening.test.js');
