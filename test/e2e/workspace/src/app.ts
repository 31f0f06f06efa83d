import { add } from './util/math';
export const total = add(2, 3);
