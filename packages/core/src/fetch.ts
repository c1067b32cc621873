/**
 * `tripswitch/fetch`: fetch with one breaker per origin. (Built in the policies issue.)
 * @module
 */
export {};
