# gemserve on Debian 12: the same install script as CI and `make`.
FROM debian:bookworm
WORKDIR /opt/gemserve
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make build
EXPOSE 50051 9464
CMD ["make", "run"]
