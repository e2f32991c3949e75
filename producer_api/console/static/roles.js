// What a role may do, by the server's own role ranks (the server still checks every request).
import { ROLE_RANK } from './facts.js';

export function can(session, role) {
  return (ROLE_RANK[session.role] ?? -1) >= ROLE_RANK[role];
}
