// Pages with no script of their own: mark the current page in the header.
import { markNav } from '/assets/common.js';

markNav();
