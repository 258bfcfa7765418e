# The `goldenpath` binary (check, serve, load, validate, keygen, verify) in a small image.
#
#   docker build -t goldenpath --build-arg GOLDENPATH_COMMIT="$(git rev-parse HEAD)" .
#   docker run --rm goldenpath check                 # the embedded reference
#   docker run --rm goldenpath check --url wss://chat.example.com/ws --jwt-secret "$SECRET"
#   docker run --rm -p 8080:8080 goldenpath serve --listen 0.0.0.0:8080 --jwt-secret dev --dev-tokens
#
# The build stage runs the release build command of .github/workflows/release.yml. Linted by
# hadolint in .ci/run.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# No .git in the build context: the commit attestations name comes from here.
ARG GOLDENPATH_COMMIT=unknown
ENV GOLDENPATH_COMMIT=${GOLDENPATH_COMMIT}
RUN cargo build --release --locked -p goldenpath

# glibc, CA certificates (for wss:// through the system's roots), no shell; runs as distroless's
# nonroot user (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/goldenpath /usr/local/bin/goldenpath
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/goldenpath"]
CMD ["check"]
