/* jobwire.mjs — jobwire.js as an ES module:
 *   import { watch } from '/jobwire.mjs';
 * The code is jobwire.js itself; this file only exports what it defines. */
import './jobwire.js';

const jobwire = globalThis.jobwire;
if (!jobwire.defaults.pusher)
  jobwire.defaults.pusher = new URL(import.meta.url).origin;

export const watch = jobwire.watch;
export const defaults = jobwire.defaults;
export default jobwire;
