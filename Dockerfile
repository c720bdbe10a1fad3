# stevedore container image: multi-stage build, Node LTS slim, non-root, data volume, health check.
FROM node:24-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 compiles its native addon when no prebuilt binary can be fetched; npm ci compiles stevedore's
# sendfile addon (src/sendfile) from the sources copied before it.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
RUN npm ci && test -f src/sendfile/build/Release/sendfile.node
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
# No STEVEDORE_* env here: env would silently win over a mounted config file. Instead the working directory is
# the data volume, so the default data dir (./data) lands on it, and the default listen is 0.0.0.0:5000.
ENV NODE_ENV=production
# Large freed buffers go back to the OS (see MALLOC_ENV in src/cli/serve.ts).
ENV MALLOC_MMAP_THRESHOLD_=131072
COPY --from=build /app/package.json /app/
COPY --from=build /app/node_modules /app/node_modules
COPY --from=build /app/dist /app/dist
# Cache hits leave by sendfile(2) through this addon (dist/sendfile/native.js loads it from beside its source).
COPY --from=build /app/src/sendfile/build/Release/sendfile.node /app/src/sendfile/build/Release/sendfile.node
RUN mkdir -p /var/lib/stevedore && chown node:node /var/lib/stevedore
WORKDIR /var/lib/stevedore
# The image's "node" user, numerically, so Kubernetes' runAsNonRoot can verify it without a runAsUser.
USER 1000:1000
VOLUME ["/var/lib/stevedore"]
EXPOSE 5000
# The probe reads the listen address like serve does (STEVEDORE_LISTEN, or listen: in the STEVEDORE_CONFIG file).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD ["node", "/app/dist/main.js", "healthcheck"]
ENTRYPOINT ["node", "/app/dist/main.js"]
CMD ["serve"]
