# berth's own image: berth serving a config, or `berth bridge` in front of a
# stdio server (the docker backend's runtime image).
#
# The build context is a built checkout: dist/ (npm run build), bin/, schemas/,
# package.json and production node_modules (npm prune --omit=dev).
# scripts/docker-images.sh prepares such a context without touching the
# checkout, and builds BASE_IMAGE from the local node binary when no registry
# is reachable. Any image with `node` (>= 22.12) on PATH serves as BASE_IMAGE.
ARG BASE_IMAGE=node:24-bookworm-slim

# Assemble and smoke-test: a base that cannot run berth fails here, not at run time.
FROM ${BASE_IMAGE} AS app
WORKDIR /app
COPY package.json ./
COPY bin ./bin
COPY schemas ./schemas
COPY node_modules ./node_modules
COPY dist ./dist
RUN ["node", "/app/bin/berth.js", "--version"]

FROM ${BASE_IMAGE}
ENV NODE_ENV=production
# Root owns the files; berth runs as an unprivileged user and cannot change them.
COPY --from=app /app /app
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
# /readyz of `berth serve` and of `berth bridge`; set BERTH_HEALTHCHECK_URL when listening elsewhere.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.BERTH_HEALTHCHECK_URL ?? 'http://127.0.0.1:8080/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/bin/berth.js"]
CMD ["serve", "/etc/berth/berth.yaml"]
