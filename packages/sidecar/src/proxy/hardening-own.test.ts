/**
 * hardening.test.ts again, with `http_server: own` on its plain-HTTP listeners (the test helpers read
 * TRIPSWITCH_TEST_HTTP_SERVER; see `testHttpServer`): `npm test` covers both servers.
 * @module
 */
process.env.TRIPSWITCH_TEST_HTTP_SERVER = 'own';
await import('./hardening.test.js');
