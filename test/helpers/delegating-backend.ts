import type { Backend } from '../../src/backends/backend.ts';

/**
 * A real backend with some of its calls replaced: fault injection at the
 * edge (a daemon that is down, a spec it refuses), never a mock of the rest.
 */
export function delegatingBackend(inner: Backend, overrides: Partial<Omit<Backend, 'name'>>): Backend {
  return {
    name: inner.name,
    list: (signal) => inner.list(signal),
    ensure: (placement, signal) => inner.ensure(placement, signal),
    remove: (id, signal) => inner.remove(id, signal),
    endpoint: (id, signal) => inner.endpoint(id, signal),
    logs: (id, tail, signal) => inner.logs(id, tail, signal),
    events: (signal) => inner.events(signal),
    close: (signal) => inner.close(signal),
    ...overrides,
  };
}
