// Which backend a config asks for, built with its settings. The one place
// `serve` learns about concrete backends; each is loaded only when chosen.
import path from 'node:path';
import type { LoadedConfig } from '../config/load.ts';
import { BerthError } from '../errors.ts';
import type { Logger } from '../observe/log.ts';
import type { Backend } from './backend.ts';

export async function createBackend(loaded: LoadedConfig, logger: Logger): Promise<Backend> {
  const config = loaded.config.backend ?? { type: 'local' as const };
  switch (config.type) {
    case 'local': {
      const { LocalBackend } = await import('./local/index.ts');
      const maxLineBytes = loaded.config.listen?.maxAnswerBytes;
      return new LocalBackend({ logger, baseDir: path.dirname(path.resolve(loaded.file)), ...(maxLineBytes === undefined ? {} : { maxLineBytes }) });
    }
    case 'docker': {
      const [{ DockerBackend }, { Daemon }, { dockerSettings }] = await Promise.all([import('./docker/index.ts'), import('./docker/daemon.ts'), import('./docker/settings.ts')]);
      const settings = dockerSettings(config);
      return new DockerBackend({ daemon: new Daemon({ socketPath: settings.socket }), settings, logger });
    }
    case 'kubernetes': {
      const [{ KubernetesBackend }, { loadKubeConfig }, { resolveKubernetesSettings }] = await Promise.all([import('./kubernetes/index.ts'), import('./kubernetes/connect.ts'), import('./kubernetes/settings.ts')]);
      const backend = new KubernetesBackend({ settings: resolveKubernetesSettings(config), config: loadKubeConfig(config), logger });
      // Missing permissions are named at start-up, not discovered one failed write at a time.
      await backend.checkAccess(AbortSignal.timeout(30_000));
      return backend;
    }
    default:
      throw new BerthError('backend_unavailable', `${loaded.file}: backend ${String(config.type)} is not available in this version of berth`);
  }
}
